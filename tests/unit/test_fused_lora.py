"""The fused LoRA forward: the same function as PEFT's, one shared cast per input, PEFT's path for anything else.

Checks: in fp32 without dropout, outputs and LoRA gradients equal PEFT's to float rounding; under CPU bf16 autocast
they stay within bf16 rounding of PEFT's; with dropout the output is the base plus the LoRA product of the masked
input scaled by 1/(1-p), with the mask drawn from the same random stream as FastDropout; q/k/v reading one tensor
share one cast, and an in-place change of that tensor makes a new one; disabled or merged adapters take PEFT's path;
the fast trainer turns it on by default on CPU and its losses follow PEFT's forward.
"""

from __future__ import annotations

import torch
from datasets import Dataset
from peft import LoraConfig, get_peft_model
from peft.tuners.lora.layer import Linear as LoraLinear

from mathtune.data.formats import to_prompt_completion
from mathtune.models import load_model, load_tokenizer
from mathtune.train.dropout import bernoulli_drop_mask, bernoulli_keep_mask
from mathtune.train.fast import SpeedConfig, fused_lora_on
from mathtune.train.fused_lora import _SharedCast, use_fused_lora
from mathtune.train.sft import build_trainer, train_sft
from support.tiny import tiny_model
from test_packing import ROWS, recipe


def lora_model(dropout: float = 0.0, seed: int = 0):
    model = get_peft_model(tiny_model(seed), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                                        lora_dropout=dropout))
    for i, (name, p) in enumerate(model.named_parameters()):
        if "lora_B" in name:  # PEFT starts B at 0, which would hide the LoRA branch
            torch.nn.init.normal_(p, std=0.5, generator=torch.Generator().manual_seed(i))
    return model


def loss_and_grads(model, ids, autocast: bool):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.loss.detach(), out.logits.detach().float(), grads


def close(a: torch.Tensor, b: torch.Tensor, rel: float) -> bool:
    return bool((a - b).norm() <= rel * b.norm())


IDS = torch.randint(3, 99, (2, 17), generator=torch.Generator().manual_seed(1))


def test_counts_every_lora_linear():
    model = lora_model()
    assert use_fused_lora(model) == 2 * 7, "7 projections per layer"
    assert all("_peft_forward" in m.__dict__ for m in model.modules() if isinstance(m, LoraLinear))


def test_fp32_matches_peft_without_dropout():
    ref_loss, ref_logits, ref_grads = loss_and_grads(lora_model(), IDS, autocast=False)
    model = lora_model()
    use_fused_lora(model)
    loss, logits, grads = loss_and_grads(model, IDS, autocast=False)
    assert torch.allclose(loss, ref_loss, rtol=1e-5) and torch.allclose(logits, ref_logits, rtol=1e-4, atol=1e-5)
    assert grads.keys() == ref_grads.keys() and len(grads) == 2 * 2 * 7
    assert all(close(grads[n], ref_grads[n], 1e-4) for n in grads)


def test_bf16_autocast_is_as_close_to_fp32_as_peft():
    exact_loss, exact_logits, exact = loss_and_grads(lora_model(), IDS, autocast=False)
    peft_loss, peft_logits, peft = loss_and_grads(lora_model(), IDS, autocast=True)
    model = lora_model()
    use_fused_lora(model)
    loss, logits, grads = loss_and_grads(model, IDS, autocast=True)
    assert (logits - exact_logits).norm() <= 1.25 * (peft_logits - exact_logits).norm()

    def error(got):  # relative distance of the gradients from fp32's, per LoRA weight; the largest
        return max(((got[n] - exact[n]).norm() / exact[n].norm()).item() for n in exact)

    # bf16 keeps ~3 significant digits, so PEFT's own bf16 gradients are up to ~10% from fp32's on this tiny model;
    # the fused path must not be farther (it was 5x farther on layer 0 while q/k/v summed their input gradients
    # in bf16, before the autograd Function returned them in fp32)
    assert error(grads) <= 1.25 * error(peft)
    assert abs(loss.item() - exact_loss.item()) <= 1.25 * abs(peft_loss.item() - exact_loss.item()) + 1e-3


def test_dropout_masks_the_input_and_rescales_the_lora_branch():
    model = lora_model(dropout=0.3)
    model.train()
    layer = model.base_model.model.model.layers[0].self_attn.q_proj
    use_fused_lora(model)
    x = torch.randn(3, 5, 32)
    torch.manual_seed(7)
    got = layer(x)
    torch.manual_seed(7)
    drop = bernoulli_drop_mask(x.shape, 0.3)
    torch.manual_seed(7)
    assert torch.equal(drop, ~bernoulli_keep_mask(x.shape, 0.3)), "FastDropout's random stream and threshold"
    low = x.masked_fill(drop, 0) @ layer.lora_A["default"].weight.t()
    want = layer.base_layer(x) + (low @ layer.lora_B["default"].weight.t()) * (layer.scaling["default"] / 0.7)
    assert torch.allclose(got, want, atol=1e-5)
    assert 0.2 < drop.float().mean().item() < 0.4
    layer.eval()
    assert torch.allclose(layer(x), layer._peft_forward(x), atol=1e-6), "no dropout at eval"


def test_one_cast_per_input_tensor_until_it_changes():
    shared, x = _SharedCast(), torch.randn(4, 8)
    first = shared(x, torch.bfloat16)
    assert shared(x, torch.bfloat16) is first, "q, k and v read the same tensor: one cast"
    assert shared(x.clone(), torch.bfloat16) is not first
    x.add_(1.0)
    again = shared(x, torch.bfloat16)
    assert again is not first and torch.equal(again, x.to(torch.bfloat16)), "an in-place change is seen"


def test_disabled_or_merged_adapters_take_peft_path():
    model = lora_model()
    use_fused_lora(model)
    base = tiny_model()
    with model.disable_adapter():
        assert torch.allclose(model(input_ids=IDS).logits, base(input_ids=IDS).logits, atol=1e-6)
    fused = model(input_ids=IDS).logits
    model.merge_adapter()
    assert torch.allclose(model(input_ids=IDS).logits, fused, atol=1e-4), "merged weights give the same function"


def test_on_by_default_on_cpu_only():
    assert fused_lora_on(SpeedConfig(), cuda=False) and not fused_lora_on(SpeedConfig(), cuda=True)
    assert not fused_lora_on(SpeedConfig(fused_lora=False), cuda=False)


def test_fast_trainer_losses_follow_peft_forward(tiny_checkpoint, tmp_path):
    tok = load_tokenizer(str(tiny_checkpoint))
    ds = Dataset.from_list(to_prompt_completion(ROWS, recipe().format, tok))
    with_dropout = recipe().model_copy(update={"lora": recipe().lora.model_copy(update={"dropout": 0.1})})
    curves = {}
    for name, lever in (("fused", None), ("peft", False)):
        speed = with_dropout.speed.model_copy(update={"fused_lora": lever})
        run = with_dropout.model_copy(update={"speed": speed})
        trainer = build_trainer(run, load_model(str(tiny_checkpoint)), tok, ds, None, tmp_path / f"{name}-built")
        fused = ["_peft_forward" in m.__dict__ for m in trainer.model.modules() if isinstance(m, LoraLinear)]
        assert fused and all(fused) == (lever is None) and any(fused) == (lever is None)
        torch.manual_seed(0)
        _, history = train_sft(run, load_model(str(tiny_checkpoint)), tok, ds, None, tmp_path / name, False)
        curves[name] = [h["loss"] for h in history if "loss" in h]
    assert len(curves["fused"]) == 3 and curves["fused"][0] != curves["fused"][-1], "training must move the loss"
    # the same masks (FastDropout's stream) and fp32: the curves agree to float rounding
    assert all(abs(a - b) <= 1e-4 * abs(b) for a, b in zip(curves["fused"], curves["peft"]))
