"""Frozen base weights stored in bf16 under CPU bf16 autocast: bit-identical losses and LoRA gradients, fewer casts.

Checks: which weights change (frozen base linears; never LoRA weights, never a head tied to the embedding); one
autocast forward and backward gives exactly the same loss and LoRA gradients before and after; the fast trainer
turns it on only under bf16 and its training losses equal those with the lever off, for a tied and an untied head.
"""

from __future__ import annotations

import torch
from datasets import Dataset
from peft import LoraConfig, get_peft_model

from mathtune.data.formats import to_prompt_completion
from mathtune.models import load_model, load_tokenizer
from mathtune.train.fast import SpeedConfig, frozen_bf16_on
from mathtune.train.frozen_bf16 import head_weight_bf16, store_frozen_linears_bf16
from mathtune.train.sft import build_trainer, train_sft
from support.tiny import tiny_model
from test_packing import ROWS, recipe


def lora_model(tied: bool):
    model = tiny_model()
    if tied:
        model.config.tie_word_embeddings = True
        model.tie_weights()
    return get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0))


def dtypes(model) -> dict[str, torch.dtype]:
    return {name: p.dtype for name, p in model.named_parameters()}


def test_only_frozen_untied_linears_turn_bf16():
    for tied in (False, True):
        model = lora_model(tied)
        converted = store_frozen_linears_bf16(model)
        kinds = dtypes(model)
        assert converted == 2 * 7 + (0 if tied else 1), "7 projections per layer, plus an untied head"
        assert all(d == torch.float32 for n, d in kinds.items() if "lora_" in n), "the adapter trains in fp32"
        assert all(d == torch.bfloat16 for n, d in kinds.items() if "base_layer" in n)
        assert kinds["base_model.model.model.embed_tokens.weight"] == torch.float32
        head = model.get_base_model().lm_head
        assert (head.weight.dtype == torch.float32) == tied, "a tied head shares the embedding: left fp32"
        copy = head_weight_bf16(head)
        assert (copy is not None) == tied and (copy is None or copy.dtype == torch.bfloat16)


def loss_and_grads(model, ids):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_autocast_step_is_bit_identical():
    ids = torch.randint(3, 99, (2, 17), generator=torch.Generator().manual_seed(1))
    for tied in (False, True):
        ref_loss, ref_grads = loss_and_grads(lora_model(tied), ids)
        model = lora_model(tied)
        store_frozen_linears_bf16(model)
        loss, grads = loss_and_grads(model, ids)
        assert torch.equal(loss, ref_loss)
        assert grads.keys() == ref_grads.keys() and len(grads) == 2 * 2 * 7
        assert all(torch.equal(grads[n], ref_grads[n]) for n in grads)


def test_on_only_under_cpu_bf16_unless_turned_off():
    assert frozen_bf16_on(SpeedConfig(), bf16=True, cuda=False)
    assert not frozen_bf16_on(SpeedConfig(), bf16=False, cuda=False), "fp32 training keeps fp32 weights"
    assert not frozen_bf16_on(SpeedConfig(), bf16=True, cuda=True), "on CUDA TRL's path is left alone"
    assert not frozen_bf16_on(SpeedConfig(frozen_bf16=False), bf16=True, cuda=False)


def test_fast_trainer_losses_match_with_the_lever_off(tiny_checkpoint, tmp_path):
    tok = load_tokenizer(str(tiny_checkpoint))
    ds = Dataset.from_list(to_prompt_completion(ROWS, recipe().format, tok))
    curves = {}
    for name, lever in (("on", None), ("off", False)):
        _, history = train_sft(recipe(precision="bf16", frozen_bf16=lever), load_model(str(tiny_checkpoint)), tok,
                               ds, None, tmp_path / name, False)
        curves[name] = [h["loss"] for h in history if "loss" in h]
    assert len(curves["on"]) == 3 and curves["on"][0] != curves["on"][-1], "training must move the loss"
    assert curves["on"] == curves["off"]


def test_fast_trainer_stores_base_weights_bf16_only_in_bf16(tiny_checkpoint, tmp_path):
    tok = load_tokenizer(str(tiny_checkpoint))
    ds = Dataset.from_list(to_prompt_completion(ROWS, recipe().format, tok))
    for precision, want in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        trainer = build_trainer(recipe(precision=precision), load_model(str(tiny_checkpoint)), tok, ds, None,
                                tmp_path / precision)
        kinds = dtypes(trainer.model)
        assert {d for n, d in kinds.items() if "base_layer" in n} == {want}
        assert {d for n, d in kinds.items() if "lora_" in n} == {torch.float32}
