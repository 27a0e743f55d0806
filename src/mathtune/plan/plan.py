"""The plan of a training run, resolved without training: `mathtune train RECIPE --dry-run [--gpu-mem 24GB]`.

Model shapes, data rows after curation, schedule and a memory estimate. A part that cannot be resolved offline (a hub
model or dataset not in the local cache) is named as such and the rest is still checked.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mathtune.config import Recipe
from mathtune.errors import UserError
from mathtune.plan.arch import Arch, local_model_path, resolve_arch
from mathtune.plan.memory import GIB, Estimate, MemorySettings, estimate_memory
from mathtune.train.fast import compact_head_on

_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(gib|gb|g|mib|mb|m)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> float:
    """'24GB' / '24 GiB' / '80g' / '16000MB' -> bytes (GB and GiB both read as 2**30: GPU sizes are quoted so)."""
    m = _SIZE.match(text)
    if not m:
        raise UserError(f"--gpu-mem {text!r}: expected a size such as 24GB or 80GiB")
    unit = (m.group(2) or "gb").lower()
    return float(m.group(1)) * (GIB if unit.startswith("g") else 2**20)


@dataclass
class Plan:
    """Everything the dry run resolved, and what it could not."""

    recipe: str
    device: str
    model: str
    arch: Arch | None = None
    rows: dict[str, int] | None = None
    schedule: dict[str, Any] = field(default_factory=dict)
    settings: MemorySettings | None = None
    memory: Estimate | None = None
    longest_row: int | None = None  # tokens of the longest training row (prompt + target), when it can be counted
    memory_longest: Estimate | None = None  # the estimate when batches pad to that row instead of max_length
    gpu_mem: float | None = None
    processes: int = 1  # devices of a launched run (--num-processes) and how they share the model (--strategy)
    strategy: str = "ddp"
    unresolved: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def memory_settings(recipe: Recipe, args: dict[str, Any], gpu: bool) -> MemorySettings:
    """The estimator's settings from the recipe and the trainer arguments it resolves to on this device."""
    quant = recipe.quantization
    kind = quant.quant_type if quant.load_in_4bit else ("int8" if quant.load_in_8bit else None)
    half = bool(args.get("bf16")) or bool(args.get("fp16"))
    return MemorySettings(
        batch=int(args["per_device_train_batch_size"]),
        max_length=int(args.get("max_length") or 1024),
        lora_r=recipe.lora.r,
        lora_targets=recipe.lora.target_modules,
        lora_dropout=recipe.lora.dropout,
        gradient_checkpointing=bool(args.get("gradient_checkpointing")),
        compute_bytes=2 if half else 4,
        quant=kind,
        double_quant=quant.double_quant,
        optim=str(args.get("optim", "adamw_torch_fused")),
        gpu=gpu,
        kv_repeat=True,  # padded batches and mathtune's varlen attention both repeat k/v
        attention_mask=not recipe.speed.padding_free,
        compact_head=compact_head_on(recipe.speed, cuda=gpu),
    )


def schedule(args: dict[str, Any], train_rows: int | None, has_early_stopping: bool,
             processes: int = 1) -> dict[str, Any]:
    """Effective batch, steps per epoch, total and warmup steps, as transformers' Trainer computes them."""
    per_device, accum = int(args["per_device_train_batch_size"]), int(args.get("gradient_accumulation_steps", 1))
    batch = per_device * processes  # each process takes its own per-device batch of every step
    shown = f"{per_device} x {processes} processes" if processes > 1 else f"{per_device}"
    out: dict[str, Any] = {"effective batch": f"{shown} x {accum} accumulation = {batch * accum} rows per step",
                           "learning rate": f"{args.get('learning_rate')} ({args.get('lr_scheduler_type', 'linear')})"}
    max_steps = int(args.get("max_steps", -1) or -1)
    total = max_steps if max_steps > 0 else None
    if train_rows is not None:
        per_epoch = math.ceil(math.ceil(train_rows / batch) / accum)
        out["steps per epoch"] = per_epoch
        if total is None:
            total = math.ceil(float(args.get("num_train_epochs", 1)) * per_epoch)
    if total is None:
        out["total steps"] = "unresolved (needs the number of training rows)"
        return out
    warm = float(args.get("warmup_steps", 0) or 0)
    warmup = int(warm) if warm >= 1 else math.ceil(total * warm)
    out["total steps"] = total if max_steps > 0 else f"{total} ({args.get('num_train_epochs', 1)} epochs)"
    out["warmup steps"] = warmup
    out["checkpoints"] = f"every {args.get('save_steps')} steps"
    if has_early_stopping:
        out["early stopping"] = "on eval loss (an upper bound on steps)"
    return out


def _data_rows(recipe: Recipe, tokenizer, plan: Plan) -> int | None:
    """Rows after curation, or None (the reason added to the plan) when the data cannot be loaded here."""
    from mathtune.data.load import load_splits

    try:
        splits = load_splits(recipe, tokenizer)
    except UserError as exc:
        plan.unresolved.append(f"data: {exc}")
        return None
    except Exception as exc:  # noqa: BLE001  (a hub dataset offline fails in many ways; the rest is still checked)
        plan.unresolved.append(f"data: cannot load offline ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})")
        return None
    plan.rows = {"train": len(splits.train), "validation": len(splits.validation), "eval": len(splits.eval)}
    if tokenizer is not None:
        from mathtune.data.formats import to_prompt_completion

        pairs = to_prompt_completion(splits.train, recipe.format, tokenizer)
        plan.longest_row = max(len(tokenizer(p["prompt"] + p["completion"]).input_ids) for p in pairs)
    return len(splits.train)


def build_plan(recipe: Recipe, recipe_name: str, home: Path, gpu_mem: float | None, cuda: bool,
               processes: int = 1, strategy: str = "ddp") -> Plan:
    """Resolve model, data, schedule and memory; the device is a GPU when --gpu-mem is given or CUDA is present.
    `processes` > 1: per-device memory under `strategy` (plan/sharding.py) and the global batch."""
    from mathtune.plan.sharding import STRATEGIES, sharded_estimate
    from mathtune.train.sft import check_trainer_keys, trainer_args

    from trl import SFTConfig

    gpu = gpu_mem is not None or cuda
    check_trainer_keys(recipe.trainer)
    # what SFTConfig ends with: its own defaults (bf16 None means on unless fp16), then mathtune's, the device's
    # and the recipe's (train/sft.py)
    fields = {f.name: f.default for f in dataclasses.fields(SFTConfig) if f.default is not dataclasses.MISSING}
    args = {**fields, **trainer_args(recipe, cuda=gpu)}
    if args.get("bf16") is None:
        args["bf16"] = not args.get("fp16")
    if processes < 1:
        raise UserError(f"--num-processes {processes}: expected 1 or more")
    if strategy not in STRATEGIES:
        raise UserError(f"--strategy {strategy}: expected one of {', '.join(STRATEGIES)}")
    plan = Plan(recipe=recipe_name, model=recipe.model, gpu_mem=gpu_mem, processes=processes, strategy=strategy,
                device=("GPU" + (f" with {gpu_mem / GIB:g} GiB" if gpu_mem else "")) if gpu else "CPU")
    path, why = local_model_path(recipe.model, home)
    if path is None:
        plan.unresolved.append(f"model: {why}")
    arch_spec = recipe.plan.architecture if recipe.plan is not None else None
    plan.arch, source = resolve_arch(recipe.model, path, arch_spec)
    if plan.arch is None:
        plan.unresolved.append(f"model: {source}")
    tokenizer = None
    if path is not None and plan.arch is not None and plan.arch.source.startswith("config.json"):  # on disk
        try:
            from mathtune.models import load_tokenizer

            tokenizer = load_tokenizer(path)
        except (OSError, ValueError):
            pass
    if tokenizer is None:
        plan.notes.append("the model's tokenizer is not on disk: token-length filters and the longest-row size "
                          "are skipped")
    rows = _data_rows(recipe, tokenizer, plan) if recipe.data.train is not None else None
    if recipe.data.train is None:
        plan.unresolved.append("data.train: missing (training needs a training source)")
    plan.schedule = schedule(args, rows, bool(recipe.early_stopping_patience), processes)
    plan.settings = memory_settings(recipe, args, gpu)
    if plan.arch is not None:
        plan.memory = sharded_estimate(plan.arch, plan.settings, processes, strategy)
        plan.unresolved.extend(plan.memory.unresolved)
        if plan.longest_row is not None and plan.longest_row < plan.settings.max_length:
            shorter = dataclasses.replace(plan.settings, max_length=plan.longest_row)
            plan.memory_longest = sharded_estimate(plan.arch, shorter, processes, strategy)
    if processes > 1:
        plan.notes.append(f"{processes} processes, {strategy}: per-device memory is an estimate from what the engine "
                          "keeps per device (plan/sharding.py), not measured; the compact LM head is off under "
                          "accelerate launch")
        if strategy in ("fsdp", "zero3", "zero2") and (recipe.quantization.load_in_4bit or recipe.quantization.load_in_8bit):
            plan.notes.append(f"quantization: mathtune refuses 4-bit/8-bit loading under {strategy}; "
                              "--set quantization.load_in_4bit=false, or plan with --strategy ddp")
    if not gpu and (recipe.quantization.load_in_4bit or recipe.quantization.load_in_8bit):
        plan.notes.append("quantization needs CUDA: training this recipe here fails; pass --gpu-mem to plan for a GPU")
    return plan


def _gib(n: float) -> str:
    return f"{n / GIB:.2f} GiB"


def format_plan(plan: Plan) -> str:
    """The plan as the text `--dry-run` prints."""
    where = f"{plan.processes} x {plan.device}, {plan.strategy}" if plan.processes > 1 else plan.device
    out = [f"plan for {plan.recipe} on {where}", "", f"model: {plan.model}"]
    a = plan.arch
    if a is not None:
        out.append(f"  {a.params / 1e9:.3f}B parameters, {a.layers} layers, hidden {a.hidden}, intermediate "
                   f"{a.intermediate}, vocab {a.vocab}, LM head {'tied' if a.tied else 'untied'} ({a.source})")
    out.append("data (after curation):")
    out.append("  " + (", ".join(f"{v} {k}" for k, v in plan.rows.items()) + " rows" if plan.rows else "unresolved"))
    out.append("schedule:")
    out += [f"  {k}: {v}" for k, v in plan.schedule.items()]
    s = plan.settings
    if s is not None:
        quant = {"nf4": "4-bit NF4", "fp4": "4-bit FP4", "int8": "8-bit"}.get(s.quant or "", "none")
        if s.quant in ("nf4", "fp4") and s.double_quant:
            quant += " + double quant"
        out += ["memory levers:",
                f"  batch {s.batch} x max length {s.max_length}; gradient checkpointing "
                f"{'on' if s.gradient_checkpointing else 'off'}; compute {'16' if s.compute_bytes == 2 else '32'}-bit; "
                f"quantisation {quant}; optimizer {s.optim}; LoRA r={s.lora_r} on {s.lora_targets}"]
    if plan.memory is not None:
        launched = f", {plan.strategy} over {plan.processes} processes" if plan.processes > 1 else ""
        out.append(f"memory estimate (peak, per device{launched}):")
        width = max(len(p.name) for p in plan.memory.parts)
        out += [f"  {p.name:<{width}}  {_gib(p.bytes):>10}  {p.note}" for p in plan.memory.parts]
        total = plan.memory.total
        out.append(f"  {'total':<{width}}  {_gib(total):>10}")
        if plan.gpu_mem:
            verdict = "fits" if total <= plan.gpu_mem else "does NOT fit"
            out.append(f"  {verdict} in {_gib(plan.gpu_mem)} ({total / plan.gpu_mem:.0%} used)")
        if plan.memory_longest is not None:
            out.append(f"  at this data's longest row ({plan.longest_row} tokens; batches pad to their longest row, "
                       f"not to max length): {_gib(plan.memory_longest.total)}")
    else:
        out.append("memory estimate: unresolved (needs the model's shapes)")
    if plan.unresolved:
        out += ["cannot resolve here:"] + [f"  - {u}" for u in plan.unresolved]
    out += [f"note: {n}" for n in plan.notes]
    return "\n".join(out)
