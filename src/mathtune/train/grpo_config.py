"""The recipe's `grpo:` block: which rewards (and weights), where custom rewards live, the starting adapter, evaluation."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from mathtune.schema import Strict


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
