"""The recipe's `recurrent:` block: build, load and run recurrent-depth models (mathtune's own, or huginn from the Hub).

    recurrent:
      init_from: {prelude: 12, core: 6, injection_mix: 0.5}   # convert the Llama named by `model:` (e.g. default)
      num_steps: 4          # core iterations at evaluation (huginn: its `num_steps`)
      mean_recurrence: 4    # training: mean of the sampled iteration count
      backprop_depth: 2     # training: gradient through the last k iterations only
      trust_remote_code: false   # true only to run a Hub model's own code (huginn-0125)
      sweep: [1, 2, 4, 8]   # after the tuned evaluation, evaluate at each iteration count (table + plot)
"""

from __future__ import annotations

from pydantic import Field

from mathtune.schema import Strict


class InitFrom(Strict):
    """How a Llama checkpoint becomes a recurrent-depth model (mathtune/recurrent/init_from.py); None = default split."""

    prelude: int | None = Field(None, ge=0)
    core: int | None = Field(None, gt=0)  # the coda takes the remaining layers
    injection_mix: float = Field(0.5, ge=0, le=1)  # adapter init: weight on the latent state


class RecurrentRecipe(Strict):
    """Settings of a recurrent-depth model; unset depth fields keep the checkpoint's own values."""

    init_from: InitFrom | None = None
    num_steps: int | None = Field(None, gt=0)
    mean_recurrence: int | None = Field(None, gt=0)
    backprop_depth: int | None = Field(None, ge=0)
    trust_remote_code: bool = False
    sweep: list[int] = Field(default_factory=list)
