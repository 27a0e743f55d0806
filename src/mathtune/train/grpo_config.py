"""The recipe's `grpo:` block: which rewards (and weights), where custom rewards live, the starting adapter, evaluation."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from mathtune.config import RECIPE_KINDS, Recipe
from mathtune.schema import Strict

# mathtune's defaults for trl.GRPOConfig; anything in the recipe's `trainer:` block wins.
GRPO_DEFAULTS: dict[str, Any] = {
    "max_steps": 100,
    "per_device_train_batch_size": 8,
    "gradient_accumulation_steps": 1,
    "num_generations": 4,
    "max_completion_length": 256,
    "learning_rate": 1e-5,
    "lr_scheduler_type": "constant",
    "beta": 0.0,  # no KL term, so no reference model to hold in memory (DAPO / Dr. GRPO practice)
    "temperature": 1.0,
    "logging_steps": 1,
    "save_strategy": "steps",
    "save_steps": 20,
    "save_total_limit": 2,
    "report_to": "none",
    "dataloader_num_workers": 0,
    "disable_tqdm": False,
}
# Choice-valued GRPOConfig fields that TRL only checks mid-training (a typo would cost a whole first step).
CHOICES = {
    "loss_type": ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo"),
    "scale_rewards": ("group", "batch", "none", True, False),
    "importance_sampling_level": ("token", "sequence"),
    "multi_objective_aggregation": ("sum_then_normalize", "normalize_then_sum"),
}


class RewardSpec(Strict):
    """One reward: a registered name, its weight in the sum TRL normalises per group, and its factory's options."""

    name: str
    weight: float = 1.0
    options: dict[str, Any] = {}


class GrpoConfig(Strict):
    """mathtune's own GRPO settings; TRL's (num_generations, beta, loss_type, ...) go in the `trainer:` block."""

    rewards: list[RewardSpec] = [RewardSpec(name="accuracy"), RewardSpec(name="format", weight=0.2)]
    # Python files (path ending in .py) or importable modules that register extra rewards, imported before lookup.
    reward_modules: list[str] = []
    # A saved LoRA adapter (e.g. RUN/adapter of `mathtune train`) to start from: SFT then RL. None: a fresh adapter.
    adapter: str | None = None
    # Held-out evaluation with the evaluation harness every N optimizer steps (and before the first, after the last).
    # 0: only before and after training.
    eval_every: int = Field(0, ge=0)
    eval_limit: int | None = Field(None, gt=0)  # evaluate on the first K held-out rows during training (None: all)


def check_grpo_trainer(trainer: dict[str, Any]) -> dict[str, Any]:
    """The `trainer:` block as trl.GRPOConfig would take it, groups dividing the generation batch (else ValueError)."""
    from trl import GRPOConfig

    from mathtune.train.trainer_check import check_trainer_block

    for key, choices in CHOICES.items():
        if key in trainer and trainer[key] not in choices:
            raise ValueError(f"trainer.{key}: expected one of {', '.join(map(str, choices))}, got {trainer[key]!r}")
    return check_trainer_block(trainer, GRPOConfig, GRPO_DEFAULTS, _check_groups)


def _check_groups(args: dict[str, Any]) -> None:
    """Each prompt's completions form one group in a generation batch: the group size must divide it."""
    n = args["num_generations"]
    if args.get("generation_batch_size") is not None:
        batch, what = args["generation_batch_size"], "generation_batch_size"
    else:
        steps = args.get("steps_per_generation") or args["gradient_accumulation_steps"]
        batch = args["per_device_train_batch_size"] * steps
        what = "per_device_train_batch_size x steps_per_generation (or gradient_accumulation_steps)"
    if n < 2 or batch % n:
        raise ValueError(
            f"trainer.num_generations: {n} must be >= 2 and divide the generation batch, {what} = {batch}: "
            "each prompt's completions form one group in a batch"
        )


@RECIPE_KINDS.register("grpo")
class GrpoRecipe(Recipe):
    """GRPO with verifiable rewards on a LoRA adapter (`mathtune grpo`)."""

    kind: Literal["grpo"] = "grpo"
    trainer_check = staticmethod(check_grpo_trainer)
    grpo: GrpoConfig = GrpoConfig()

    @model_validator(mode="after")
    def _rewards(self) -> "GrpoRecipe":
        if not self.grpo.rewards:
            raise ValueError("grpo.rewards: empty; list at least one reward, e.g. [{name: accuracy}]")
        return self
