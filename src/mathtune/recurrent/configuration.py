"""Config of mathtune's recurrent-depth causal LM: Llama-style blocks split into prelude, iterated core and coda.

A subclass of LlamaConfig so that transformers' Llama decoder layer, RMSNorm and rotary embedding can be reused as
they are (and a Llama checkpoint's weights copied in without renaming a tensor); `num_hidden_layers` counts the
distinct layers, prelude + core + coda.
"""

from __future__ import annotations

from typing import Any, Literal

from transformers import LlamaConfig

MODEL_TYPE = "mathtune_recurrent"
StateInit = Literal["embed", "zero", "random"]


class RecurrentConfig(LlamaConfig):
    """Prelude / core / coda layer counts, the iteration counts for training and evaluation, and the state start."""

    model_type = MODEL_TYPE

    def __init__(
        self,
        n_prelude: int = 1,
        n_core: int = 2,
        n_coda: int = 1,
        num_steps: int = 4,
        mean_recurrence: int = 4,
        backprop_depth: int = 2,
        state_init: StateInit = "embed",
        injection_mix: float = 0.5,
        **kwargs: Any,
    ):
        # Set before LlamaConfig's init, which validates the whole object.
        self.n_prelude, self.n_core, self.n_coda = n_prelude, n_core, n_coda
        self.num_steps = num_steps  # iterations of the core at evaluation (and whenever a KV cache is in use)
        self.mean_recurrence = mean_recurrence  # training: mean of the sampled iteration count
        self.backprop_depth = backprop_depth  # training: gradients flow through at most this many last iterations
        # First latent state: "embed" starts from the prelude output (so r=1 is the plain layer stack), "zero", or
        # "random" (huginn's choice: a truncated normal, std 1/sqrt(hidden), which makes a forward non-deterministic).
        self.state_init = state_init
        self.injection_mix = injection_mix  # adapter init: weight on the latent state; 1 - mix on the prelude output
        kwargs["num_hidden_layers"] = n_prelude + n_core + n_coda
        super().__init__(**kwargs)
        if n_core < 1 or n_prelude < 0 or n_coda < 0:
            raise ValueError(f"RecurrentConfig: need n_core >= 1 and n_prelude, n_coda >= 0, got {n_prelude}/{n_core}/{n_coda}")
        if num_steps < 1 or mean_recurrence < 1 or backprop_depth < 0:
            raise ValueError("RecurrentConfig: num_steps and mean_recurrence must be >= 1, backprop_depth >= 0")
        if state_init not in ("embed", "zero", "random"):
            raise ValueError(f"RecurrentConfig: state_init must be embed, zero or random, got {state_init!r}")

    def cache_slot(self, step: int, core_layer: int) -> int:
        """KV-cache slot of core layer `core_layer` at iteration `step`: after the prelude and coda slots, so the
        prelude and coda slots never move when the iteration count changes."""
        return self.n_prelude + self.n_coda + step * self.n_core + core_layer
