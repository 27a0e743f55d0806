"""FastDropout: the LoRA dropout mask drawn four elements per random word keeps the distribution of nn.Dropout."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model
from torch import nn

from mathtune.train.dropout import FastDropout, bernoulli_keep_mask, drop_threshold, use_fast_lora_dropout
from mathtune.train.fast import SpeedConfig, fast_dropout_on, uses_fast_trainer
from support.tiny import tiny_model


@pytest.mark.parametrize("p", [0.05, 0.1, 0.5])
def test_keep_share_is_one_minus_p(p):
    torch.manual_seed(0)
    keep = bernoulli_keep_mask(torch.Size([1000, 1000]), p)
    assert keep.dtype == torch.bool and keep.shape == (1000, 1000)
    # 1e6 Bernoulli draws: the standard error of the share is <= 0.0005, so 0.003 is six of them
    assert abs(keep.float().mean().item() - (1 - p)) < 0.003


def test_threshold_bounds():
    assert drop_threshold(0.0) == -32768, "p = 0 drops nothing: every int16 is >= -32768"
    assert drop_threshold(0.5) == 0
    assert drop_threshold(0.05) == 3277 - 32768


def test_masks_are_independent_between_calls_and_elements():
    torch.manual_seed(1)
    a = bernoulli_keep_mask(torch.Size([4096, 64]), 0.5).float()
    b = bernoulli_keep_mask(torch.Size([4096, 64]), 0.5).float()
    assert not torch.equal(a, b)
    # neighbours come from the same 64-bit word: their correlation must still be ~0
    flat = a.flatten()
    corr = torch.corrcoef(torch.stack([flat[:-1:2], flat[1::2]]))[0, 1].item()
    assert abs(corr) < 0.02


def test_forward_keeps_expectation_and_backward_uses_the_same_mask():
    torch.manual_seed(2)
    drop = FastDropout(0.1).train()
    x = torch.full((2000, 500), 3.0, requires_grad=True)
    y = drop(x)
    kept = y != 0
    assert torch.allclose(y[kept], torch.tensor(3.0 / 0.9))
    assert abs(y.mean().item() - 3.0) < 0.02, "E[dropout(x)] = x"
    y.sum().backward()
    assert torch.equal(x.grad != 0, kept) and torch.allclose(x.grad[kept], torch.tensor(1 / 0.9))


def test_eval_mode_and_zero_p_are_identity():
    x = torch.randn(8, 8)
    assert FastDropout(0.3).eval()(x) is x
    assert FastDropout(0.0).train()(x) is x
    with pytest.raises(ValueError, match="dropout p"):
        FastDropout(1.0)


def test_swaps_only_lora_dropouts_of_a_peft_model():
    model = get_peft_model(tiny_model(), LoraConfig(r=2, lora_alpha=4, lora_dropout=0.05, target_modules="all-linear"))
    lora_modules = sum(1 for m in model.modules() if isinstance(getattr(m, "lora_dropout", None), nn.ModuleDict))
    assert use_fast_lora_dropout(model) == lora_modules > 0
    assert not any(type(m) is nn.Dropout and m.p > 0 for m in model.modules() if m is not model)
    assert use_fast_lora_dropout(model) == 0, "idempotent"
    model.eval()
    x = torch.randint(0, 99, (1, 6))
    with torch.no_grad():
        a, b = model(x).logits, model(x).logits
    assert torch.equal(a, b), "no dropout at eval"


def test_no_dropout_leaves_the_model_alone():
    model = get_peft_model(tiny_model(), LoraConfig(r=2, lora_alpha=4, lora_dropout=0.0, target_modules="all-linear"))
    assert use_fast_lora_dropout(model) == 0


def test_recipe_switch_defaults_to_cpu_only():
    assert fast_dropout_on(SpeedConfig(), cuda=False) and not fast_dropout_on(SpeedConfig(), cuda=True)
    assert not fast_dropout_on(SpeedConfig(fast_dropout=False), cuda=False)
    off = SpeedConfig(padding_free=False, compact_lm_head=False, fast_dropout=False, fused_lora=False)
    assert not uses_fast_trainer(off)
