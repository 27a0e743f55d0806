"""What a recipe may use when a training command runs under `accelerate launch`: levers that cannot work in the
launched setup are a one-line error before any model or run-folder work, and mathtune's speed levers that bypass the
distributed wrapper are turned off with the reason logged.

    accelerate launch --config_file src/mathtune/recipes/accelerate/ddp.yaml -m mathtune train RECIPE
"""

from __future__ import annotations

import logging

from mathtune import distributed
from mathtune.config import Recipe
from mathtune.errors import UserError
from mathtune.train.fast import SpeedConfig

log = logging.getLogger("mathtune")
SHARDED = ("FSDP", "DEEPSPEED")  # accelerate's distributed types that shard weights or optimizer state


def check_launch_levers(recipe: Recipe, stage: str, setup: str | None = None) -> None:
    """Refuse (one line) a recipe lever the launched setup cannot run; `setup` is accelerate's distributed type."""
    setup = distributed.distributed_type() if setup is None else setup
    if setup not in SHARDED:
        return  # one process, or DDP (MULTI_GPU / MULTI_CPU): every lever of a single process works
    quant = recipe.quantization
    if quant.load_in_4bit or quant.load_in_8bit:
        key = "load_in_4bit" if quant.load_in_4bit else "load_in_8bit"
        # FSDP and ZeRO-3 shard flat parameters; bitsandbytes weights shard only when stored in the compute dtype
        # (bnb_4bit_quant_storage), which mathtune's loader does not set: run QLoRA under DDP (ddp.yaml) instead
        raise UserError(f"quantization.{key}: 4-bit/8-bit loading is not supported by mathtune under {setup}; "
                        "launch QLoRA with the DDP config (recipes/accelerate/ddp.yaml)")
    from mathtune.train.sft import BNB_OPTIMIZERS

    optim = str(recipe.trainer.get("optim", ""))
    if optim in BNB_OPTIMIZERS:  # bitsandbytes' optimizers step whole tensors, not FSDP/ZeRO shards
        raise UserError(f"trainer.optim: {optim!r} (bitsandbytes) is not supported by mathtune under {setup}; "
                        "use adamw_torch, or launch with the DDP config (recipes/accelerate/ddp.yaml)")
    if stage == "grpo":
        # GRPO's held-out evaluations generate on rank 0 alone, which weights sharded across ranks cannot do
        raise UserError(f"kind: grpo under {setup} is not supported by mathtune (its held-out evaluations generate "
                        "on rank 0 alone); launch GRPO with the DDP config (recipes/accelerate/ddp.yaml)")


def launch_speed(speed: SpeedConfig) -> SpeedConfig:
    """The recipe's speed levers as they can run in this launch: the compact LM head is off under a launcher."""
    if not distributed.launched():
        return speed
    from mathtune.train.fast import compact_head_on

    if compact_head_on(speed):
        # it calls the inner model and the head directly, bypassing the DDP/FSDP/DeepSpeed wrapper's forward, so the
        # wrapper would neither all-reduce the gradients nor gather sharded weights: TRL's head is used instead
        log.info("speed.compact_lm_head: off under accelerate launch (%s, %d processes): it bypasses the "
                 "distributed wrapper's forward; TRL's LM head is used", distributed.distributed_type(),
                 distributed.num_processes())
        speed = speed.model_copy(update={"compact_lm_head": False})
    return speed
