"""Cut prompt groups out of TRL generation batches and join them into one batch (for dynamic sampling).

A batch of `GRPOTrainer._generate_and_score_completions` is a dict of tensors whose rows are completions, a group
being `num_generations` consecutive rows: prompts left-padded, completions and their per-token values right-padded,
`num_items_in_batch` the count of loss tokens. Batches generated in different tries have different widths, so
joining them re-pads each tensor on its padded side. TRL has no such helper (dynamic sampling is its open issue
#3708), hence this file.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PAD = "pad"  # stands for the tokenizer's pad token id
LEFT_PADDED = {"prompt_ids": PAD, "prompt_mask": 0}
RIGHT_PADDED = {"completion_ids": PAD, "completion_mask": 0, "old_per_token_logps": 0.0,
                "sampling_per_token_logps": 0.0, "ref_per_token_logps": 0.0, "tool_mask": 1,
                "importance_sampling_ratio": 1.0}
PER_ROW = {"advantages"}
RECOUNTED = {"num_items_in_batch"}


def _width(tensors: list[torch.Tensor], multiple: int | None) -> int:
    width = max(t.shape[1] for t in tensors)
    return -(-width // multiple) * multiple if multiple else width


def join_groups(parts: list[tuple[dict, int]], group_size: int, pad_id: int, multiple: int | None = None) -> dict:
    """One batch of the groups `(batch, group index)` in order, re-padded; `num_items_in_batch` recounted."""
    if not parts:
        raise ValueError("no groups to join")
    keys = list(parts[0][0])
    known = set(LEFT_PADDED) | set(RIGHT_PADDED) | PER_ROW | RECOUNTED
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise ValueError(f"dynamic sampling cannot join batches with {', '.join(unknown)} (text-only prompts only)")
    out: dict = {}
    for key in keys:
        if key in RECOUNTED:
            continue
        rows = [batch[key][g * group_size : (g + 1) * group_size] for batch, g in parts]
        if key in PER_ROW:
            out[key] = torch.cat(rows)
            continue
        left = key in LEFT_PADDED
        value = (LEFT_PADDED if left else RIGHT_PADDED)[key]
        value = pad_id if value == PAD else value
        width = _width(rows, multiple)
        out[key] = torch.cat([F.pad(r, (width - r.shape[1], 0) if left else (0, width - r.shape[1]), value=value)
                              for r in rows])
    if "num_items_in_batch" in keys:
        mask = out["completion_mask"]
        if "tool_mask" in out:
            mask = mask * out["tool_mask"]
        out["num_items_in_batch"] = mask.sum()
    return out


def group_totals(rewards_per_func: torch.Tensor, weights: torch.Tensor,
                 columns: list[int] | None = None) -> list[float | None]:
    """Each completion's weighted reward sum as TRL forms it (None-rewards skipped; None when none judged it), over
    the reward `columns` only when given (dynamic sampling's `spread_of`)."""
    if columns is not None:
        rewards_per_func, weights = rewards_per_func[:, columns], weights[columns]
    unscorable = torch.isnan(rewards_per_func).all(dim=1)
    totals = (rewards_per_func * weights.to(rewards_per_func.device).unsqueeze(0)).nansum(dim=1)
    return [None if bad else float(t) for t, bad in zip(totals.tolist(), unscorable.tolist())]
