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


class DynamicSamplingConfig(Strict):
    """DAPO's dynamic sampling: drop groups whose rewards have no spread, refill the batch with fresh prompts."""

    enabled: bool = False
    # generation rounds per batch, the first included; when they run out, all-equal groups fill the rest (no outcome
    # gradient; only the side rewards' spread, if any), so a step never waits forever on prompts always or never solved
    max_tries: int = Field(4, ge=1)
    # the rewards whose spread keeps a group (DAPO filters on the outcome: all right or all wrong is dropped). None:
    # `accuracy` when the recipe has it, else the weighted total. Judging the total lets a graded side reward (a
    # repetition penalty differs between any two completions) keep every group, so nothing would ever be dropped.
    spread_of: list[str] | None = None


class CurriculumConfig(Strict):
    """Re-estimate pass rates with the current policy every N steps and move the band (toward harder prompts)."""

    every: int = Field(0, ge=0)  # 0: estimate once, before training
    shift: float = Field(0.0, ge=-1.0, le=1.0)  # added to both ends of the band at each refresh (negative: harder)


class PassRateConfig(Strict):
    """Keep the training prompts the starting model solves sometimes: pass rate in [band[0], band[1]] from k samples."""

    enabled: bool = False
    k: int = Field(8, ge=2)  # samples per prompt (TRL's sampling settings: temperature, max_completion_length)
    band: tuple[float, float] = (0.1, 0.9)
    pool_size: int | None = Field(None, gt=0)  # estimate on the first N training prompts only (None: all of them)
    batch_size: int = Field(64, gt=0)  # sequences decoded together while estimating
    curriculum: CurriculumConfig = CurriculumConfig()

    @model_validator(mode="after")
    def _band(self) -> "PassRateConfig":
        lo, hi = self.band
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"grpo.pass_rate.band: expected [lo, hi] with 0 <= lo <= hi <= 1, got [{lo}, {hi}]")
        return self


class GuardRailConfig(Strict):
    """When a run goes wrong, say so (`warn`) or end training there (`stop`); a threshold of null turns a rail off."""

    action: Literal["warn", "stop"] = "warn"
    accuracy_drops: int | None = Field(2, ge=1)  # held-out accuracy fell this many evaluations in a row
    window: int = Field(5, ge=1)  # steps the per-step rails below average over
    max_clipped: float | None = Field(0.5, gt=0, le=1)  # share of completions cut at max_completion_length
    length_growth: float | None = Field(2.0, gt=1)  # mean completion length vs the run's first window
    min_signal: float | None = Field(0.05, ge=0, lt=1)  # share of groups with a reward spread stays at or below


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
    dynamic_sampling: DynamicSamplingConfig = DynamicSamplingConfig()
    pass_rate: PassRateConfig = PassRateConfig()
    guard_rails: GuardRailConfig = GuardRailConfig()

    @model_validator(mode="after")
    def _spread_of(self) -> "GrpoConfig":
        names, chosen = [r.name for r in self.rewards], self.dynamic_sampling.spread_of
        if chosen is not None and not chosen:
            raise ValueError("grpo.dynamic_sampling.spread_of: empty; name at least one of grpo.rewards, or leave "
                             "it out")
        for name in chosen or []:
            if name not in names:
                raise ValueError(f"grpo.dynamic_sampling.spread_of: {name!r} is not one of grpo.rewards "
                                 f"({', '.join(names)})")
        return self


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
