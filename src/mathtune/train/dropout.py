"""LoRA dropout with a cheaper random mask: the same Bernoulli keep-or-drop per element, drawn 4 at a time.

Why by hand: PEFT applies `nn.Dropout` to the input of every LoRA module, and on a CPU the mask costs more than the
LoRA matmuls themselves. A torch profile of one bf16 training step of the default recipe on a 2-core AMD EPYC
(benchmarks/results/train_speed.md, "Dropout") put `aten::bernoulli_` + the mask multiply at ~20% of the step: torch's
CPU generator draws one 32-bit number per element. Here one 64-bit draw gives four 16-bit uniforms, each compared
with p quantised to 1/65536 (0.05 -> 0.050003). Same expectation (kept values scaled by 1/(1-p)), same independent
mask per module and per call; only the random stream differs from torch's. Nothing changes at eval (`.eval()` or p=0).
"""

from __future__ import annotations

import torch
from torch import nn

_LEVELS = 1 << 16


def drop_threshold(p: float) -> int:
    """The int16 value below which an element is dropped: uniform int16 values fall below it with probability ~p."""
    return round(p * _LEVELS) - (_LEVELS // 2)


def _uniform_int16(shape: torch.Size, generator: torch.Generator | None) -> torch.Tensor:
    n = shape.numel()
    words = torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64, generator=generator)
    return words.view(torch.int16)[:n].view(shape)


def bernoulli_keep_mask(shape: torch.Size, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """A bool mask of `shape`, True (keep) with probability 1 - p (p quantised to 1/65536)."""
    return _uniform_int16(shape, generator) >= drop_threshold(p)


def bernoulli_drop_mask(shape: torch.Size, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """The complement: True (drop) with probability p, for a `masked_fill` (mathtune.train.fused_lora)."""
    return _uniform_int16(shape, generator) < drop_threshold(p)


class FastDropout(nn.Module):
    """Drop-in for `nn.Dropout(p)` in training: keep each element with probability 1 - p, scale kept ones."""

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout p must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = bernoulli_keep_mask(x.shape, self.p)
        # mask and scale in one tensor of x's dtype: autograd's backward of the product is one multiply
        return x * (keep.to(x.dtype) * (1.0 / (1.0 - self.p)))

    def extra_repr(self) -> str:
        return f"p={self.p}"


def use_fast_lora_dropout(model: nn.Module) -> int:
    """Swap every LoRA module's `nn.Dropout` for FastDropout (CPU only: on CUDA torch's dropout is fast); count."""
    swapped = 0
    for module in model.modules():
        dropouts = getattr(module, "lora_dropout", None)
        if not isinstance(dropouts, nn.ModuleDict):
            continue
        for name, layer in list(dropouts.items()):
            if type(layer) is nn.Dropout and layer.p > 0:
                dropouts[name] = FastDropout(layer.p)
                swapped += 1
    return swapped
