"""Padding-free packing: examples back to back in one row must train exactly as if each ran alone.

Checks: position ids restart per example and the first token of each example is no target; logits of a packed row
equal each example's logits run separately (sdpa, eager and mathtune's per-example attention); changing one example
does not move another's logits; the fast trainer's loss equals plain TRL's on the same batch and over a few steps.
"""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from mathtune.config import Recipe, load_recipe
from mathtune.data.formats import to_prompt_completion
from mathtune.errors import UserError
from mathtune.models import load_model, load_tokenizer
from mathtune.train.fast import SpeedConfig, compact_head_on
from mathtune.train.sft import build_trainer, train_sft
from mathtune.train.varlen import register_varlen_attention, segment_bounds, varlen_attention_forward
from support.tiny import tiny_model

LENGTHS = (7, 13, 3, 10)
ROWS = [{"question": f"{a} + {b} =", "answer": str(a + b), "solution": f"{a} + {b} = {a + b}", "source": "t"}
        for a in range(0, 40, 7) for b in range(3)]


def examples() -> list[list[int]]:
    gen = torch.Generator().manual_seed(0)
    return [torch.randint(3, 99, (n,), generator=gen).tolist() for n in LENGTHS]


def packed_batch(seqs: list[list[int]]) -> dict:
    return DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)([{"input_ids": s} for s in seqs])


def test_collator_restarts_positions_and_masks_each_first_token():
    batch = packed_batch(examples())
    assert batch["input_ids"].shape == (1, sum(LENGTHS))
    expected = torch.cat([torch.arange(n) for n in LENGTHS])
    assert torch.equal(batch["position_ids"][0], expected)
    starts = [0, 7, 20, 23]
    assert batch["cu_seq_lens_q"].tolist() == [*starts, sum(LENGTHS)]
    assert (batch["labels"][0, starts] == -100).all(), "no example may be trained to continue the previous one"
    assert segment_bounds(None, batch["position_ids"], sum(LENGTHS)) == [*starts, sum(LENGTHS)]


@pytest.mark.parametrize("attn", ["sdpa", "eager", "varlen"])
def test_packed_logits_equal_separate_runs(attn):
    model = tiny_model().eval()
    model.set_attn_implementation(register_varlen_attention() if attn == "varlen" else attn)
    seqs = examples()
    batch = packed_batch(seqs)
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                       cu_seq_lens_q=batch["cu_seq_lens_q"], cu_seq_lens_k=batch["cu_seq_lens_k"],
                       max_length_q=batch["max_length_q"], max_length_k=batch["max_length_k"],
                       use_cache=False).logits[0]  # as in training: with a cache, transformers does not look for packing
        alone = torch.cat([model(input_ids=torch.tensor([s])).logits[0] for s in seqs])
    torch.testing.assert_close(packed, alone, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("attn", ["sdpa", "varlen"])
def test_changing_one_example_leaves_the_others_alone(attn):
    model = tiny_model().eval()
    model.set_attn_implementation(register_varlen_attention() if attn == "varlen" else attn)
    seqs = examples()
    changed = [list(s) for s in seqs]
    changed[0] = [5] * len(changed[0])
    with torch.no_grad():
        a, b = (model(**{k: v for k, v in packed_batch(x).items() if k in ("input_ids", "position_ids",
                 "cu_seq_lens_q")}, use_cache=False).logits[0] for x in (seqs, changed))
    n0 = LENGTHS[0]
    assert not torch.allclose(a[:n0], b[:n0]), "the changed example itself must change"
    torch.testing.assert_close(a[n0:], b[n0:], atol=1e-6, rtol=0)


def recipe(**speed) -> Recipe:
    return Recipe.model_validate({
        "data": {"eval": {"source": "reasoning_gym", "task": "chain_sum", "size": 2, "seed": 9}},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "trainer": {"max_steps": 3, "per_device_train_batch_size": 6, "save_strategy": "no", "logging_steps": 1,
                    "disable_tqdm": True, "learning_rate": 1e-2},
        "speed": {"precision": "fp32", **speed},  # exact comparisons: the same precision on every machine
    })


def test_packed_bf16_attention_runs_short_examples_in_fp32(monkeypatch):
    import mathtune.train.varlen as varlen

    monkeypatch.setattr(varlen, "FP32_ATTENTION_MAX_TOKENS", 15)  # the 12-token example in fp32, the 18 in bf16
    gen = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(1, 4, 30, 8, generator=gen).bfloat16() for _ in range(3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, _ = varlen_attention_forward(torch.nn.Module(), q, k, v, None, cu_seq_lens_q=torch.tensor([0, 12, 30]))
    assert got.dtype == torch.bfloat16 and got.shape == (1, 30, 4, 8)
    sdpa = torch.nn.functional.scaled_dot_product_attention
    short = sdpa(q[:, :, :12].float(), k[:, :, :12].float(), v[:, :, :12].float(), is_causal=True).bfloat16()
    long = sdpa(q[:, :, 12:], k[:, :, 12:], v[:, :, 12:], is_causal=True)
    assert torch.equal(got[:, :12], short.transpose(1, 2)) and torch.equal(got[:, 12:], long.transpose(1, 2))


def test_fast_loss_equals_plain_trl_on_the_same_batch(tiny_checkpoint, tmp_path):
    tok = load_tokenizer(str(tiny_checkpoint))
    ds = Dataset.from_list(to_prompt_completion(ROWS, recipe().format, tok))
    plain_off = {"padding_free": False, "varlen_attention": False, "compact_lm_head": False, "fast_dropout": False,
                 "fused_lora": False}
    plain = build_trainer(recipe(**plain_off), load_model(str(tiny_checkpoint)), tok, ds, None, tmp_path / "p")
    fast = build_trainer(recipe(), load_model(str(tiny_checkpoint)), tok, ds, None, tmp_path / "f")
    assert type(fast).__name__ == "FastSFTTrainer" and type(plain).__name__ == "SFTTrainer"
    pb, fb = next(iter(plain.get_train_dataloader())), next(iter(fast.get_train_dataloader()))
    assert "attention_mask" in pb and "attention_mask" not in fb and fb["input_ids"].shape[0] == 1
    assert int(pb["attention_mask"].sum()) == fb["input_ids"].shape[1], "same examples, no padding"
    for trainer in (plain, fast):
        trainer.model.train()
    with torch.no_grad():
        lp = plain.compute_loss(plain.model, dict(pb))
        lf = fast.compute_loss(fast.model, dict(fb))
    torch.testing.assert_close(lf, lp, atol=1e-5, rtol=1e-5)


def test_fast_training_follows_the_plain_loss_curve(tiny_checkpoint, tmp_path):
    tok = load_tokenizer(str(tiny_checkpoint))
    ds = Dataset.from_list(to_prompt_completion(ROWS, recipe().format, tok))
    off = {"padding_free": False, "varlen_attention": False, "compact_lm_head": False, "fast_dropout": False,
                 "fused_lora": False}
    curves = []
    for name, speed in (("plain", off), ("fast", {})):
        _, history = train_sft(recipe(**speed), load_model(str(tiny_checkpoint)), tok, ds, None, tmp_path / name, False)
        curves.append([h["loss"] for h in history if "loss" in h])
    assert len(curves[0]) == len(curves[1]) == 3
    assert curves[0][0] != curves[0][-1], "training must move the loss"
    for lp, lf in zip(*curves):
        assert abs(lp - lf) <= 1e-3 * abs(lp)


def test_speed_block_is_a_checked_recipe_option():
    assert load_recipe(None).speed == SpeedConfig()
    assert SpeedConfig().padding_free and compact_head_on(SpeedConfig(), cuda=False), "fast levers are the CPU default"
    assert not compact_head_on(SpeedConfig(), cuda=True), "on GPU TRL's chunked LM head is the default (memory)"
    assert compact_head_on(SpeedConfig(compact_lm_head=True), cuda=True), "the recipe's choice wins"
    with pytest.raises(UserError, match="speed.padding_fre"):
        load_recipe(None, ["speed.padding_fre=false"])
    with pytest.raises(UserError, match="speed.threads"):
        load_recipe(None, ["speed.threads=0"])
    assert load_recipe(None, ["speed.compact_lm_head=false"]).speed.compact_lm_head is False


def test_bf16_training_autocasts_and_stays_near_the_fp32_loss_curve(tiny_checkpoint, tmp_path):
    tok = load_tokenizer(str(tiny_checkpoint))
    ds = Dataset.from_list(to_prompt_completion(ROWS, recipe().format, tok))
    curves = {}
    for precision in ("fp32", "bf16"):  # bf16 forced: emulated where the CPU lacks it, still quick on a tiny model
        _, history = train_sft(recipe(precision=precision), load_model(str(tiny_checkpoint)), tok, ds, None,
                               tmp_path / precision, False)
        curves[precision] = [h["loss"] for h in history if "loss" in h]
    assert curves["fp32"] != curves["bf16"], "bf16 autocast must be in effect on the fast path"
    for l32, l16 in zip(curves["fp32"], curves["bf16"]):
        assert abs(l16 - l32) <= 0.02 * abs(l32)


def test_fast_path_runs_the_body_and_head_under_autocast(tiny_checkpoint, tmp_path):
    tok = load_tokenizer(str(tiny_checkpoint))
    ds = Dataset.from_list(to_prompt_completion(ROWS, recipe().format, tok))
    trainer = build_trainer(recipe(precision="bf16"), load_model(str(tiny_checkpoint)), tok, ds, None, tmp_path)
    assert trainer.args.bf16 and not trainer.args.gradient_checkpointing
    assert trainer.mathtune_precision["dtype"] == "bf16"
    seen = []
    head = trainer.model.get_base_model().lm_head
    handle = head.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    trainer.model.train()
    batch = next(iter(trainer.get_train_dataloader()))
    loss = trainer.compute_loss(trainer.model, dict(batch))
    handle.remove()
    assert seen == [torch.bfloat16] and loss.dtype == torch.float32, "bf16 head matmul, fp32 loss"


def test_fast_trainer_swaps_lora_dropout_on_cpu(tiny_checkpoint, tmp_path):
    from mathtune.train.dropout import FastDropout

    tok = load_tokenizer(str(tiny_checkpoint))
    ds = Dataset.from_list(to_prompt_completion(ROWS, recipe().format, tok))
    with_dropout = recipe().model_copy(update={"lora": recipe().lora.model_copy(update={"dropout": 0.1})})
    trainer = build_trainer(with_dropout, load_model(str(tiny_checkpoint)), tok, ds, None, tmp_path)
    kinds = {type(m) for m in trainer.model.modules() if isinstance(m, (FastDropout, torch.nn.Dropout))}
    assert kinds == {FastDropout}, "every LoRA dropout is the fast one on CPU"
    off = with_dropout.model_copy(update={"speed": SpeedConfig(precision="fp32", fast_dropout=False)})
    plain = build_trainer(off, load_model(str(tiny_checkpoint)), tok, ds, None, tmp_path / "off")
    assert not any(isinstance(m, FastDropout) for m in plain.model.modules())
