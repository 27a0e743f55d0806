"""Recurrent-depth model: shapes, determinism, truncated backprop, save/load, KV cache, init from Llama, loading, sweep."""

from __future__ import annotations

import json

import pytest
import torch
from support.tiny import tiny_tokenizer
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from mathtune.errors import UserError
from mathtune.recurrent.configuration import RecurrentConfig
from mathtune.recurrent.init_from import convert_checkpoint, default_split, from_llama
from mathtune.recurrent.loading import configure, set_num_steps, trust_remote_code
from mathtune.recurrent.modeling import RecurrentForCausalLM, sample_depth
from mathtune.recurrent.recipe import RecurrentRecipe

DIMS = dict(vocab_size=99, hidden_size=32, num_attention_heads=4, num_key_value_heads=2, intermediate_size=64,
            eos_token_id=1, pad_token_id=0, bos_token_id=None, max_position_embeddings=256)


def tiny_recurrent(seed: int = 0, **overrides) -> RecurrentForCausalLM:
    torch.manual_seed(seed)
    settings = dict(n_prelude=1, n_core=2, n_coda=1, num_steps=3, mean_recurrence=4, backprop_depth=2)
    settings.update(overrides)
    model = RecurrentForCausalLM(RecurrentConfig(**DIMS, **settings))
    with torch.no_grad():  # the identity-mix adapter start hides bugs in how state and injection are combined
        model.model.adapter.weight.add_(0.05 * torch.randn_like(model.model.adapter.weight))
    return model.eval()


def ids(batch: int = 2, length: int = 9, seed: int = 1) -> torch.Tensor:
    return torch.randint(3, 99, (batch, length), generator=torch.Generator().manual_seed(seed))


def test_shapes_and_outputs():
    out = tiny_recurrent()(ids())
    assert out.logits.shape == (2, 9, 99)
    assert out.convergence.shape == (2, 9) and torch.isfinite(out.convergence).all()
    assert out.num_steps == 3
    assert tiny_recurrent()(ids(), num_steps=5).num_steps == 5


def test_deterministic_at_fixed_depth_and_depth_matters():
    model = tiny_recurrent()
    a, b = model(ids(), num_steps=4).logits, model(ids(), num_steps=4).logits
    assert torch.equal(a, b)
    model.train()  # an explicit count is fixed in training too (no sampling)
    assert torch.equal(model(ids(), num_steps=4).logits, a)
    assert not torch.allclose(model(ids(), num_steps=2).logits, a, atol=1e-4)


def test_training_samples_depth_and_eval_does_not():
    torch.manual_seed(0)
    draws = [sample_depth(4, 2) for _ in range(400)]
    assert all(k == min(2, n + k) and n + k >= 1 for n, k in draws)
    assert 3.5 < sum(n + k for n, k in draws) / len(draws) < 6.5  # 1 + Poisson(LogNormal with mean 4)
    model = tiny_recurrent()
    model.train()
    torch.manual_seed(1)
    assert len({model(ids()).num_steps for _ in range(12)}) > 1
    model.eval()
    assert {model(ids()).num_steps for _ in range(3)} == {3}


def _manual_truncated_loss(model: RecurrentForCausalLM, x: torch.Tensor, no_grad: int, grad: int) -> torch.Tensor:
    """The forward written out by hand: prelude, `no_grad` detached iterations, `grad` tracked ones, coda, loss."""
    inner = model.model
    pos = torch.arange(x.shape[1]).unsqueeze(0)
    kw = dict(attention_mask=None, position_ids=pos, position_embeddings=inner.rotary_emb(inner.embed_tokens(x), pos))
    from transformers.masking_utils import create_causal_mask

    kw["attention_mask"] = create_causal_mask(config=model.config, inputs_embeds=inner.embed_tokens(x),
                                              attention_mask=None, past_key_values=None, position_ids=pos)
    h = inner.embed_tokens(x)
    for layer in inner.prelude:
        h = layer(h, **kw)
    e, state = h, h
    for _ in range(no_grad):
        with torch.no_grad():
            state = inner.core[1](inner.core[0](inner.adapter(torch.cat([state, e], -1)), **kw), **kw)
    for _ in range(grad):
        state = inner.core[1](inner.core[0](inner.adapter(torch.cat([state, e], -1)), **kw), **kw)
    for layer in inner.coda:
        state = layer(state, **kw)
    logits = model.lm_head(inner.norm(state))
    return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 99), x[:, 1:].reshape(-1))


def _grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_gradient_flows_only_through_the_last_k_iterations():
    model = tiny_recurrent()
    model.train()
    x = ids(batch=2, length=7)
    calls = {"forward_with_grad": 0, "backward": 0}
    core0 = model.model.core[0]
    core0.register_forward_hook(lambda m, i, o: calls.__setitem__("forward_with_grad", calls["forward_with_grad"] + torch.is_grad_enabled()))
    core0.register_full_backward_hook(lambda m, gi, go: calls.__setitem__("backward", calls["backward"] + 1))
    model(x, labels=x, num_steps=(3, 2)).loss.backward()
    assert calls == {"forward_with_grad": 2, "backward": 2}  # 5 iterations ran, 2 of them differentiated
    truncated = _grads(model)
    model.zero_grad(set_to_none=True)
    _manual_truncated_loss(model, x, 3, 2).backward()
    manual = _grads(model)
    assert truncated.keys() == manual.keys()
    for name in manual:
        torch.testing.assert_close(truncated[name], manual[name], rtol=1e-4, atol=1e-6, msg=name)
    model.zero_grad(set_to_none=True)
    _manual_truncated_loss(model, x, 0, 5).backward()  # full backprop gives the core other gradients
    full = _grads(model)
    assert not torch.allclose(full["model.core.0.mlp.up_proj.weight"], truncated["model.core.0.mlp.up_proj.weight"])


def test_save_load_round_trip(tmp_path):
    model = tiny_recurrent()
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "mathtune_recurrent"
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, RecurrentForCausalLM)
    assert "auto_map" not in json.loads((tmp_path / "config.json").read_text())  # no remote code involved
    assert torch.equal(loaded(ids(), num_steps=3).logits, model(ids(), num_steps=3).logits)


def test_generation_with_kv_cache_equals_without():
    model = tiny_recurrent()
    prompt = ids(batch=1, length=6)
    cached = model.generate(prompt, max_new_tokens=12, do_sample=False, use_cache=True, pad_token_id=0, eos_token_id=1)
    plain = model.generate(prompt, max_new_tokens=12, do_sample=False, use_cache=False, pad_token_id=0, eos_token_id=1)
    assert torch.equal(cached, plain)
    # one slot per (iteration, core layer) plus prelude and coda, and the step logits match the full forward
    out = model(prompt, use_cache=True, num_steps=3)
    assert len(out.past_key_values.layers) == 1 + 1 + 3 * 2
    nxt = torch.tensor([[5]])
    step = model(nxt, past_key_values=out.past_key_values, use_cache=True, num_steps=3).logits[:, -1]
    full = model(torch.cat([prompt, nxt], 1), num_steps=3).logits[:, -1]
    torch.testing.assert_close(step, full, rtol=1e-4, atol=1e-5)


def test_continuous_batching_generator_serves_the_model():
    from mathtune.eval import continuous
    from mathtune.eval.generate import GenerationConfig, HFGenerator

    model, tok = tiny_recurrent(), tiny_tokenizer()
    assert continuous.supported(model)
    prompts = ["2+3=", "a longer prompt here", "x"]
    outs = HFGenerator(model, tok).generate(prompts, GenerationConfig(max_new_tokens=10, batch_size=2), progress=False)
    for prompt, (completion,) in zip(prompts, outs):
        p = tok(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
        ref = model.generate(p, max_new_tokens=10, do_sample=False, use_cache=False, pad_token_id=0, eos_token_id=1)
        new = [t for t in ref[0, p.shape[1]:].tolist()]
        new = new[: new.index(1)] if 1 in new else new
        assert completion.text == tok.decode(new, skip_special_tokens=True)


def tiny_llama(layers: int = 5) -> LlamaForCausalLM:
    torch.manual_seed(3)
    return LlamaForCausalLM(LlamaConfig(num_hidden_layers=layers, tie_word_embeddings=True, **DIMS)).eval()


def test_init_from_llama_reproduces_it_at_one_iteration():
    llama = tiny_llama()
    model = from_llama(llama, prelude=2, core=2)
    assert (model.config.n_prelude, model.config.n_core, model.config.n_coda) == (2, 2, 1)
    x = ids()
    torch.testing.assert_close(model(x, num_steps=1).logits, llama(x).logits, rtol=0, atol=1e-5)
    assert not torch.allclose(model(x, num_steps=3).logits, llama(x).logits, atol=1e-3)
    assert default_split(30) == (12, 6, 12)  # SmolLM2-135M: layers 0-11 | 12-17 | 18-29
    with pytest.raises(UserError, match="does not fit"):
        from_llama(llama, prelude=4, core=2)


def test_convert_checkpoint_is_cached_and_loads(tmp_path):
    src = tmp_path / "llama"
    tiny_llama().save_pretrained(src)
    tiny_tokenizer().save_pretrained(src)
    path = convert_checkpoint(str(src), tmp_path / "home", prelude=1, core=3, injection_mix=0.5)
    assert path.endswith("llama-recurrent-p1-c3-mix0.5")
    assert convert_checkpoint(str(src), tmp_path / "home", 1, 3, 0.5) == path
    from mathtune.models import load_model

    model = load_model(path, recurrent=RecurrentRecipe(num_steps=2, backprop_depth=1))
    assert isinstance(model, RecurrentForCausalLM) and model.config.num_steps == 2 and model.config.backprop_depth == 1


def test_remote_code_only_when_the_recipe_allows_it(tmp_path):
    with pytest.raises(UserError, match="trust_remote_code: true"):
        trust_remote_code("tomg-group-umd/huginn-0125", None)
    with pytest.raises(UserError, match="ships its own modeling code"):
        trust_remote_code("tomg-group-umd/huginn-0125", RecurrentRecipe())
    assert trust_remote_code("tomg-group-umd/huginn-0125", RecurrentRecipe(trust_remote_code=True)) is True
    folder = tmp_path / "custom"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "huginn_raven", "auto_map": {"AutoConfig": "x.C"}}))
    from mathtune.models import load_model

    with pytest.raises(UserError, match="runs a checkpoint's code only when"):
        load_model(str(folder))
    assert trust_remote_code(str(tmp_path), None) is False  # ordinary folders load as before


def test_recipe_block_and_num_steps_settings():
    from mathtune.config import load_recipe

    recipe = load_recipe(None, ["recurrent.num_steps=4", "recurrent.sweep=[1,2]", "recurrent.init_from.core=6"])
    assert recipe.recurrent.num_steps == 4 and recipe.recurrent.sweep == [1, 2] and recipe.recurrent.init_from.core == 6
    with pytest.raises(UserError, match="recurrent.nope: unknown key"):
        load_recipe(None, ["recurrent.nope=1"])
    model = tiny_recurrent()
    set_num_steps(model, 7)
    assert model(ids()).num_steps == 7
    with pytest.raises(UserError, match="not a recurrent-depth model"):
        configure(tiny_llama(), RecurrentRecipe(num_steps=2))


def test_lora_reaches_core_and_adapter_and_sft_trains(tmp_path):
    from datasets import Dataset

    from mathtune.config import load_recipe
    from mathtune.train.sft import build_trainer

    recipe = load_recipe(None, ["trainer.max_steps=2", "trainer.per_device_train_batch_size=2", "lora.r=4"])
    tok = tiny_tokenizer()
    rows = [{"prompt": f"<u>{a}+{a}=\n<a>", "completion": f"{2 * a}<eos>"} for a in range(8)]
    trainer = build_trainer(recipe, tiny_recurrent(), tok, Dataset.from_list(rows), None, tmp_path)
    names = [n for n, _ in trainer.model.named_modules() if n.endswith("lora_A")]
    assert any(".adapter." in n for n in names) and any(".core.1." in n for n in names)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_B" in n}
    trainer.train()
    after = dict(trainer.model.named_parameters())
    assert any(not torch.equal(before[n], after[n]) for n in before)


def test_sweep_writes_a_curve(tmp_path):
    from mathtune.config import EvalConfig, FormatConfig
    from mathtune.recurrent.sweep import parse_sweep, run_sweep

    assert parse_sweep("num_steps=1,2,2,4") == [1, 2, 4]
    for bad in ("steps=1,2", "num_steps=", "num_steps=0,1", "num_steps=a"):
        with pytest.raises(UserError, match="--sweep"):
            parse_sweep(bad)
    rows = [{"question": f"{a}+1", "answer": str(a + 1), "solution": "", "source": "t", "meta": {}} for a in range(3)]
    points = run_sweep(tiny_recurrent(), tiny_tokenizer(), rows, FormatConfig(), EvalConfig(max_new_tokens=6, batch_size=2),
                       tmp_path, [1, 3])
    assert [p["num_steps"] for p in points] == [1, 3]
    assert all(p["n_graded"] == 3 and p["convergence"] is not None and p["seconds"] > 0 for p in points)
    assert (tmp_path / "sweep.png").is_file() and "| 3 |" in (tmp_path / "report.md").read_text()
    assert json.loads((tmp_path / "num_steps-3" / "summary.json").read_text())["n"] == 3


def test_remote_code_models_take_the_generate_fallback():
    from mathtune.eval import continuous

    model = tiny_recurrent()
    model.config.auto_map = {"AutoModelForCausalLM": "modeling.Custom"}
    assert not continuous.supported(model)


def test_run_pipeline_converts_trains_and_sweeps(tmp_path, tiny_checkpoint):
    from mathtune.config import Recipe
    from mathtune.pipeline import run_pipeline

    task = {"source": "reasoning_gym", "task": "chain_sum", "config": {"min_terms": 2, "max_terms": 2,
                                                                      "min_digits": 1, "max_digits": 1}}
    recipe = Recipe.model_validate({
        "model": str(tiny_checkpoint),
        "recurrent": {"init_from": {"prelude": 0, "core": 1}, "num_steps": 2, "mean_recurrence": 2,
                      "backprop_depth": 1, "sweep": [1, 2]},
        "data": {"train": {**task, "size": 8, "seed": 1}, "eval": {**task, "size": 3, "seed": 1000}},
        "lora": {"r": 2}, "trainer": {"max_steps": 1, "per_device_train_batch_size": 4, "disable_tqdm": True},
        "eval": {"max_new_tokens": 4, "batch_size": 3},
    })
    metrics = run_pipeline(recipe, tmp_path / "run", tmp_path / "home")
    adapter_cfg = json.loads((tmp_path / "run/adapter/adapter_config.json").read_text())
    assert adapter_cfg["base_model_name_or_path"].endswith("model-recurrent-p0-c1-mix0.5")
    assert [p["num_steps"] for p in metrics["sweep"]] == [1, 2]
    assert "Accuracy vs core iterations" in (tmp_path / "run/report.md").read_text()
    assert (tmp_path / "run/sweep/sweep.png").is_file()
