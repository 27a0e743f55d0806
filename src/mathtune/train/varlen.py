"""Causal attention per packed example: the attention a padding-free batch needs on a CPU, without a dense mask.

A padding-free batch is one row holding several examples back to back, with position ids that restart at 0 for each
and `cu_seq_lens_q` marking where each starts (TRL's collator adds it). With `sdpa` or `eager`, transformers turns the
restarting position ids into a dense block-diagonal mask over the whole row: correct, but it computes attention over
all (row length)^2 pairs and cannot skip the masked blocks. Flash-attention's varlen kernel does the right thing on
GPUs only. Here each example runs its own causal `scaled_dot_product_attention`, so no token can see another example
and the cost is the sum of the examples' squared lengths, halved by causal skipping.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

VARLEN_ATTENTION = "mathtune_varlen"
FP32_ATTENTION_MAX_TOKENS = 200  # CPU bf16: examples up to this length attend in fp32 (see below)


def segment_bounds(cu_seq_lens: torch.Tensor | None, position_ids: torch.Tensor | None, length: int) -> list[int]:
    """Start offsets of the packed examples plus the row length: from `cu_seq_lens`, else from restarting positions."""
    if cu_seq_lens is not None:
        return [int(x) for x in cu_seq_lens.tolist()]
    if position_ids is not None and position_ids.shape[0] == 1:
        starts = (position_ids[0] == 0).nonzero().flatten().tolist()
        if starts and starts[0] == 0:
            return [*starts, length]
    return [0, length]


def varlen_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    cu_seq_lens_q: torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """Attention for transformers' AttentionInterface: per-example causal SDPA on a packed row, plain SDPA otherwise."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    packed = query.shape[0] == 1 and query.shape[2] > 1 and kwargs.get("past_key_values") is None
    bounds = segment_bounds(cu_seq_lens_q, position_ids, query.shape[2]) if packed else [0]
    if len(bounds) < 3:  # one example per row (or decoding): the ordinary path, mask and all
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      position_ids=position_ids, **kwargs)
    # bf16 q/k/v on a CPU (under autocast): a short example's attention runs in fp32. Up to ~200 tokens torch's CPU
    # flash kernel takes longer forward + backward in bf16 than in fp32 including the casts; from ~220 on it does
    # not (benchmarks/results/varlen_attention_dtype.md: 1.7x at 60 tokens, 1.4x at 120, 1.0x at 220, 0.8x at 800).
    cpu_bf16 = query.device.type == "cpu" and query.dtype == torch.bfloat16
    groups = getattr(module, "num_key_value_groups", 1)
    if groups > 1:  # grouped-query attention: expand k/v heads once, not per example
        key = key.repeat_interleave(groups, dim=1)
        value = value.repeat_interleave(groups, dim=1)

    def attend(q, k, v):
        if cpu_bf16 and q.shape[2] <= FP32_ATTENTION_MAX_TOKENS:
            return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True, dropout_p=dropout,
                                                  scale=scaling).to(q.dtype)
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout, scale=scaling)

    with torch.autocast("cpu", enabled=False) if cpu_bf16 else contextlib.nullcontext():  # CPU autocast lists sdpa
        outs = [attend(query[:, :, s:e], key[:, :, s:e], value[:, :, s:e]) for s, e in zip(bounds[:-1], bounds[1:])]
    return torch.cat(outs, dim=2).transpose(1, 2).contiguous(), None


def register_varlen_attention() -> str:
    """Register the attention (and sdpa's mask builder for it) with transformers once; returns its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(VARLEN_ATTENTION, varlen_attention_forward)
    AttentionMaskInterface.register(VARLEN_ATTENTION, sdpa_mask)
    return VARLEN_ATTENTION
