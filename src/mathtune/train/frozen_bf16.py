"""Frozen base weights kept in bf16 when a LoRA model trains under CPU bf16 autocast: the same matmuls, no re-casts.

Why by hand: torch's autocast casts a linear layer's fp32 weight to bf16 on every call and caches the cast only for
leaf tensors that require grad (aten/src/ATen/autocast_mode.cpp, `cached_cast`), so the frozen base weights of a LoRA
model (all of the 135M default's, bar the adapter) are cast again at every forward of every step; the tied LM head
(49k x 576) too. Nothing in PEFT, TRL or accelerate stores them in bf16 for autocast. The cast rounds the same way
each time, so storing the rounded weight once gives the same bf16 operands, hence the same outputs and LoRA gradients
(checked bit for bit in tests/unit/test_frozen_bf16.py); only the frozen fp32 copy is given up, which training never
reads (the adapter alone is saved; evaluation reloads the base model). The LoRA weights stay fp32 (optimizer state).
Modules whose weight is shared with an embedding (a tied LM head) are left alone: the embedding lookup runs outside
autocast and feeds the fp32 residual stream; `head_weight_bf16` gives such a head a bf16 copy of its own instead.
"""

from __future__ import annotations

import torch
from torch import nn


def _embedding_weights(model: nn.Module) -> set[int]:
    return {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}


def store_frozen_linears_bf16(model: nn.Module) -> int:
    """Turn the fp32 weight (and bias) of every frozen nn.Linear not tied to an embedding into bf16; count them."""
    tied = _embedding_weights(model)
    done = 0
    for module in model.modules():
        if type(module) is not nn.Linear or id(module.weight) in tied:
            continue
        params = [p for p in (module.weight, module.bias) if p is not None]
        if any(p.requires_grad for p in params) or module.weight.dtype != torch.float32:
            continue
        for p in params:
            p.data = p.data.to(torch.bfloat16)
        done += 1
    return done


def head_weight_bf16(head: nn.Linear) -> torch.Tensor | None:
    """A detached bf16 copy of a frozen, bias-free fp32 LM head's weight (what autocast casts it to); else None.

    An untied frozen head is already bf16 after store_frozen_linears_bf16 and is called as it is (None here)."""
    if head.weight.requires_grad or head.bias is not None or head.weight.dtype != torch.float32:
        return None
    return head.weight.detach().to(torch.bfloat16)
