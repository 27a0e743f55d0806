"""LoRA / QLoRA supervised fine-tuning with TRL's SFTTrainer: `mathtune train RECIPE`."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from mathtune.config import Recipe
from mathtune.errors import UserError
from mathtune.runs import save_trained_adapter, update_run_info
from mathtune.train.sft_config import SFT_DEFAULTS, check_sft_trainer

log = logging.getLogger(__name__)

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
# transformers' `optim` names served by bitsandbytes (8-bit and paged optimizers): they need CUDA.
BNB_OPTIMIZERS = {
    "adamw_bnb_8bit", "adamw_8bit", "ademamix_8bit", "lion_8bit", "lion_32bit", "paged_adamw_32bit",
    "paged_adamw_8bit", "paged_ademamix_32bit", "paged_ademamix_8bit", "paged_lion_32bit", "paged_lion_8bit",
    "rmsprop_bnb", "rmsprop_bnb_8bit", "rmsprop_bnb_32bit", "galore_adamw_8bit", "galore_adamw_8bit_layerwise",
}


def check_trainer_keys(trainer: dict[str, Any], where: str = "trainer") -> None:
    """Fail with one line when the recipe's `trainer:` block is not something trl.SFTConfig accepts (the check a
    recipe gets at load, train/sft_config.py; kept for recipes built in code)."""
    try:
        check_sft_trainer(trainer)
    except ValueError as exc:
        raise UserError(str(exc).replace("trainer", where, 1)) from None


def check_device_levers(recipe: Recipe, cuda: bool) -> None:
    """Without CUDA, a GPU-only memory lever (4-bit/8-bit loading, a bitsandbytes optimizer) is a one-line error."""
    if cuda:
        return
    quant = recipe.quantization
    if quant.load_in_4bit or quant.load_in_8bit:
        key = "load_in_4bit" if quant.load_in_4bit else "load_in_8bit"
        raise UserError(f"quantization.{key}: 4-bit/8-bit loading (QLoRA) needs a CUDA GPU; none is available here")
    optim = str(recipe.trainer.get("optim", ""))
    if optim in BNB_OPTIMIZERS:
        raise UserError(f"trainer.optim: {optim!r} is a bitsandbytes optimizer (8-bit/paged) and needs a CUDA GPU; "
                        "none is available here (use adamw_torch)")


def training_precision(recipe: Recipe, cuda: bool) -> tuple[str, str]:
    """The compute precision of training ('bf16' or 'fp32', 'fp16' on request) and why; `trainer.bf16/fp16` win."""
    for key in ("bf16", "fp16"):
        if recipe.trainer.get(key):
            return key, f"trainer.{key}: true in the recipe"
    if recipe.trainer.get("bf16") is False:
        return "fp32", "trainer.bf16: false in the recipe"
    from mathtune.precision import decide_precision

    dtype, reason = decide_precision(recipe.speed.precision, "cuda" if cuda else "cpu")
    return ("bf16" if "bfloat16" in str(dtype) else "fp32"), reason


def trainer_args(recipe: Recipe, cuda: bool, precision: str | None = None) -> dict[str, Any]:
    """mathtune's defaults, the device's and then the recipe's `trainer:` block, as given to trl.SFTConfig."""
    args: dict[str, Any] = {**SFT_DEFAULTS, "seed": recipe.seed}
    if not cuda:
        # bf16 autocast only where the processor multiplies bf16 fast (mathtune.precision): on CPUs without bf16
        # instructions a bf16 matmul is 15-60x slower than fp32 (benchmarks/results/matmul_dtype.md). Gradient
        # checkpointing (TRL's default) stays off: it recomputes every layer's forward, a third more compute, for
        # memory a CPU host rarely lacks at these sizes; a recipe may still ask for it in `trainer:`.
        precision = precision or training_precision(recipe, cuda)[0]
        args.update(use_cpu=True, bf16=precision == "bf16", gradient_checkpointing=False)
    elif recipe.speed.precision != "auto":  # on CUDA `auto` keeps TRL's choice; an explicit one is passed on
        args["bf16"] = recipe.speed.precision == "bf16"
    return {**args, **recipe.trainer}


def sft_config(recipe: Recipe, output_dir: Path, has_validation: bool, precision: str | None = None):
    """Build trl.SFTConfig from mathtune's defaults, the recipe's seed and its `trainer:` block."""
    import torch
    from trl import SFTConfig

    check_trainer_keys(recipe.trainer)
    check_device_levers(recipe, torch.cuda.is_available())
    from mathtune.trackers import check_report_to

    check_report_to(recipe.trainer)
    args = {**trainer_args(recipe, torch.cuda.is_available(), precision), "output_dir": str(output_dir)}
    if recipe.early_stopping_patience:
        if not has_validation:
            raise UserError("early_stopping_patience: needs validation rows; set data.validation_size > 0")
        args.update(
            eval_strategy="steps",
            eval_steps=args["save_steps"],
            load_best_model_at_end=True,
            metric_for_best_model="eval_loss",
            greater_is_better=False,
        )
    elif has_validation:
        args.update(eval_strategy="steps", eval_steps=args["save_steps"])
    args.update(recipe.trainer)
    try:
        return SFTConfig(**args)
    except (ValueError, TypeError) as exc:
        raise UserError(f"trainer: {str(exc).splitlines()[0]}") from None


def last_complete_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoint whose trainer state was written (Trainer writes it last, so a killed save is skipped)."""
    if not folder.is_dir():
        return None
    found = []
    for sub in folder.iterdir():
        m = CHECKPOINT_RE.match(sub.name)
        if not m or not (sub / "trainer_state.json").is_file():
            continue
        try:
            json.loads((sub / "trainer_state.json").read_text())
        except ValueError:
            continue
        found.append((int(m.group(1)), sub))
    return max(found)[1] if found else None


def build_trainer(recipe: Recipe, model, tokenizer, train_ds, val_ds, output_dir: Path):
    """An SFTTrainer with a fresh LoRA adapter on `model` (prompt/completion datasets; loss on completions)."""
    import torch
    from transformers import EarlyStoppingCallback
    from trl import SFTTrainer

    from mathtune.models import lora_config
    from mathtune.train.fast import apply_threads, make_fast_trainer_class, uses_fast_trainer
    from mathtune.train.launched import launch_speed

    cuda = torch.cuda.is_available()
    precision, why = training_precision(recipe, cuda)
    log.info("training precision: %s (%s)", precision, why)
    args = sft_config(recipe, output_dir, has_validation=val_ds is not None, precision=precision)
    callbacks = []
    if recipe.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=recipe.early_stopping_patience))
    kwargs = dict(model=model, args=args, train_dataset=train_ds, eval_dataset=val_ds, processing_class=tokenizer,
                  peft_config=lora_config(recipe.lora), callbacks=callbacks)
    apply_threads(recipe.speed)
    speed = launch_speed(recipe.speed)  # under accelerate launch, without the levers that bypass its wrapper
    if uses_fast_trainer(speed):  # the speed levers (train/fast.py): same data, same steps, less compute
        trainer = make_fast_trainer_class()(**kwargs, speed=speed)
    else:
        trainer = SFTTrainer(**kwargs)
    trainer.mathtune_precision = {"dtype": precision, "why": why, "device": "cuda" if cuda else "cpu"}
    return trainer


def train_sft(recipe: Recipe, model, tokenizer, train_ds, val_ds, run_dir: Path, resume: bool) -> tuple[Path, list]:
    """Train, save the adapter to `run_dir/adapter`, and return it with the trainer's log history."""
    ckpt_dir = run_dir / "checkpoints"
    trainer = build_trainer(recipe, model, tokenizer, train_ds, val_ds, ckpt_dir)
    from mathtune.trackers import point_trackers

    point_trackers(trainer, run_dir)
    update_run_info(run_dir, precision={"train": trainer.mathtune_precision})
    resume_from = last_complete_checkpoint(ckpt_dir) if resume else None
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    return save_trained_adapter(trainer, tokenizer, run_dir), trainer.state.log_history
