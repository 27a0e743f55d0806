"""The recipe of `mathtune run` / `mathtune train` (kind `sft`): the shared blocks plus a `trainer:` block for
trl.SFTConfig, checked against it when the recipe is read."""

from __future__ import annotations

from typing import Any, Literal

from mathtune.config import RECIPE_KINDS, Recipe

# mathtune's defaults for trl.SFTConfig; anything in the recipe's `trainer:` block wins.
SFT_DEFAULTS: dict[str, Any] = {
    "num_train_epochs": 1,
    "per_device_train_batch_size": 8,
    "gradient_accumulation_steps": 1,
    "learning_rate": 2e-4,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 0.05,
    "logging_steps": 1,
    "save_strategy": "steps",
    "save_steps": 20,
    "save_total_limit": 2,
    "report_to": "none",
    "max_length": 512,
    "completion_only_loss": True,
    "dataloader_num_workers": 0,
    "disable_tqdm": False,
}


def check_sft_trainer(trainer: dict[str, Any]) -> dict[str, Any]:
    """The `trainer:` block as trl.SFTConfig would take it (ValueError naming the key otherwise)."""
    from trl import SFTConfig

    from mathtune.train.trainer_check import check_trainer_block

    return check_trainer_block(trainer, SFTConfig, SFT_DEFAULTS)


@RECIPE_KINDS.register("sft")
class SftRecipe(Recipe):
    """LoRA SFT: baseline evaluation, training on `data.train`, evaluation of the adapter."""

    kind: Literal["sft"] = "sft"
    trainer_check = staticmethod(check_sft_trainer)
