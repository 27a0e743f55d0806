"""Dry-run plan and memory estimate: arithmetic against hand-computed values, offline resolution, CLI cases."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mathtune.config import Recipe
from mathtune.errors import UserError
from mathtune.plan.arch import KNOWN_ARCHITECTURES, arch_from_config, resolve_arch
from mathtune.plan.memory import MemorySettings, estimate_memory, layer_activation_bytes, lora_shapes
from mathtune.plan.recipe import PlanConfig
from mathtune.plan.plan import build_plan, format_plan, parse_size, schedule
from mathtune.train.sft import SFT_DEFAULTS, check_device_levers
from support.tiny import tiny_model

ROOT = Path(__file__).resolve().parents[2]
EVAL = {"source": "reasoning_gym", "task": "chain_sum", "size": 4, "seed": 1000}


@pytest.fixture(scope="module")
def tiny_arch():
    # tiny Llama: hidden 32, intermediate 64, 2 layers, 4 heads x 8, 2 kv heads, vocab 99, LM head untied
    return arch_from_config(tiny_model().config, "tiny")


def test_parameter_counts_by_hand(tiny_arch):
    per_layer = 32 * 32 + 32 * 16 + 32 * 16 + 32 * 32 + 3 * 32 * 64 + 2 * 32  # q k v o gate up down, 2 norms
    assert tiny_arch.params == 99 * 32 + 2 * per_layer + 32 + 99 * 32 == 24928
    assert (tiny_arch.q_dim, tiny_arch.kv_dim, tiny_arch.tied) == (32, 16, False)


def test_lora_optimizer_and_4bit_weights_by_hand(tiny_arch):
    s = MemorySettings(batch=1, max_length=8, lora_r=4, quant="nf4", double_quant=True, optim="adamw_torch", gpu=False)
    est = estimate_memory(tiny_arch, s)
    # r x (in + out) per layer: q 4*64, k 4*48, v 4*48, o 4*64, gate/up/down 4*96 -> 2048, two layers
    assert est.get("LoRA parameters") == 4096 * 4 and est.get("gradients") == 4096 * 4
    assert est.get("optimizer state") == 4096 * 8  # AdamW: two fp32 states
    linear = 2 * (1024 + 512 + 512 + 1024 + 3 * 2048)  # quantised; embeddings, norms and LM head stay fp32
    assert est.get("weights") == pytest.approx(linear * 0.5 + linear / 64 * (1 + 4 / 256) + (24928 - linear) * 4)
    no_dq = estimate_memory(tiny_arch, MemorySettings(batch=1, max_length=8, lora_r=4, quant="nf4", double_quant=False))
    assert no_dq.get("weights") - est.get("weights") == pytest.approx(linear / 64 * (4 - 1 - 4 / 256))
    # bitsandbytes keeps tensors under 4096 elements in 32-bit state: every tiny LoRA matrix is that small
    eight = estimate_memory(tiny_arch, MemorySettings(batch=1, max_length=8, lora_r=4, optim="adamw_bnb_8bit"))
    assert eight.get("optimizer state") == 4096 * 8
    big = estimate_memory(tiny_arch, MemorySettings(batch=1, max_length=8, lora_r=128, optim="paged_adamw_8bit"))
    n_big = sum(128 * n for _, i, o in lora_shapes(tiny_arch, "all-linear") for n in (i, o) if 128 * n >= 4096)
    n_small = sum(128 * n for _, i, o in lora_shapes(tiny_arch, "all-linear") for n in (i, o) if 128 * n < 4096)
    assert big.get("optimizer state") == pytest.approx(2 * n_big * (1 + 4 / 256) + 8 * n_small)


def test_activations_by_hand(tiny_arch):
    s = MemorySettings(batch=2, max_length=16, lora_r=4, lora_dropout=0.1, gpu=False, kv_repeat=False, attention_mask=False)
    # fp32, per token and layer: norms 2*32*4; SDPA q,k,v,out (2*32 + 2*16)*4; MLP 3*64*4; LoRA inputs of
    # q,k,v,gate,up (32 each), o (32), down (64) in fp32 + their fp32 dropout noise; A outputs 7 x r
    per_token = 256 + 384 + 768 + 256 * 4 + 256 * 4 + 7 * 4 * 4
    assert layer_activation_bytes(tiny_arch, s) == per_token == 3568
    est = estimate_memory(tiny_arch, s)
    assert est.get("activations") == 2 * per_token * 32
    # no dropout: modules fed the same tensor share it (q/k/v one input, gate/up one) and there is no noise
    s0 = MemorySettings(batch=2, max_length=16, lora_r=4, lora_dropout=0.0, gpu=False, kv_repeat=False, attention_mask=False)
    assert layer_activation_bytes(tiny_arch, s0) == 256 + 384 + 768 + (32 + 32 + 32 + 64) * 4 + 7 * 4 * 4
    # checkpointing keeps each layer's input (fp32) and recomputes one layer
    gc = estimate_memory(tiny_arch, MemorySettings(batch=2, max_length=16, lora_r=4, lora_dropout=0.1, gpu=False,
                                                    kv_repeat=False, attention_mask=False, gradient_checkpointing=True))
    assert gc.get("activations") == 2 * 32 * 32 * 4 + per_token * 32
    # a padded batch: k/v repeated to every head and a bool mask of batch x length^2
    padded = estimate_memory(tiny_arch, MemorySettings(batch=2, max_length=16, lora_r=4, lora_dropout=0.1, gpu=False))
    assert padded.get("activations") - est.get("activations") == 2 * 32 * (2 * 16 * 4) + 2 * 16 * 16


@pytest.mark.parametrize("model, billions", [
    ("TinyLlama/TinyLlama-1.1B-Chat-v1.0", 1.10), ("meta-llama/Llama-3.1-8B", 8.03), ("Qwen/Qwen2.5-1.5B", 1.54),
    ("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", 1.78), ("Qwen/Qwen2.5-Math-7B", 7.62),
    ("HuggingFaceTB/SmolLM2-135M", 0.135),
])
def test_known_architectures_match_model_cards(model, billions):
    arch, source = resolve_arch(model, None)
    assert arch is not None and "known architectures" in source
    assert arch.params / 1e9 == pytest.approx(billions, rel=0.01)


def test_unknown_hub_model_is_unresolved_but_the_rest_is_planned(tmp_path):
    recipe = Recipe.model_validate({
        "model": "someone/not-a-cached-model",
        "data": {"train": {**EVAL, "seed": 1, "size": 40}, "eval": EVAL},
        "trainer": {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 2, "num_train_epochs": 2},
    })
    plan = build_plan(recipe, "r.yaml", tmp_path, None, cuda=False)
    assert plan.arch is None and plan.memory is None
    assert any("not-a-cached-model" in u and "plan.architecture" in u for u in plan.unresolved)
    assert plan.rows["train"] > 30 and plan.schedule["steps per epoch"] == -(-(-(-plan.rows["train"] // 4)) // 2)
    text = format_plan(plan)
    assert "cannot resolve here" in text and "memory estimate: unresolved" in text
    # the recipe can give the shape offline
    recipe.plan = PlanConfig(architecture=KNOWN_ARCHITECTURES["HuggingFaceTB/SmolLM2-135M"])
    plan = build_plan(recipe, "r.yaml", tmp_path, None, cuda=False)
    assert plan.arch is not None and plan.arch.source == "the recipe's plan.architecture"
    assert plan.memory.total > 0


def test_schedule_like_the_trainer():
    args = {**SFT_DEFAULTS, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 8,
            "num_train_epochs": 3, "warmup_steps": 0.1}
    s = schedule(args, 5800, has_early_stopping=True)
    assert s["steps per epoch"] == 363 and s["total steps"].startswith("1089") and s["warmup steps"] == 109
    assert schedule({**args, "max_steps": 10}, None, False)["total steps"] == 10


def test_parse_size():
    assert parse_size("24GB") == parse_size("24 GiB") == 24 * 2**30
    assert parse_size("512MB") == 512 * 2**20
    with pytest.raises(UserError, match="--gpu-mem"):
        parse_size("lots")


def test_gpu_only_levers_fail_on_cpu_naming_the_key():
    base = {"data": {"eval": EVAL}}
    with pytest.raises(UserError, match=r"^trainer\.optim: 'paged_adamw_8bit'"):
        check_device_levers(Recipe.model_validate({**base, "trainer": {"optim": "paged_adamw_8bit"}}), cuda=False)
    with pytest.raises(UserError, match=r"^quantization\.load_in_4bit"):
        check_device_levers(Recipe.model_validate({**base, "quantization": {"load_in_4bit": True}}), cuda=False)
    check_device_levers(Recipe.model_validate({**base, "trainer": {"optim": "adamw_bnb_8bit"}}), cuda=True)
    check_device_levers(Recipe.model_validate({**base, "trainer": {"gradient_checkpointing": True}}), cuda=False)


def mathtune(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mathtune", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={"PATH": "/usr/bin:/bin", "MATHTUNE_HOME": str(cwd / "home"),
                                            "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
                                            # this checkout's code, whatever the venv's editable install points at
                                            "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")})


def test_dry_run_of_the_magpie_recipe_offline(tmp_path):
    proc = mathtune("train", "sft/r1distill_qwen15b_magpie_curated", "--dry-run", "--gpu-mem", "24GB", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "1.777B parameters, 28 layers" in out and "4-bit NF4 + double quant" in out
    assert "fits in 24.00 GiB" in out and "cannot resolve here" in out and "data:" in out
    assert not (tmp_path / "runs").exists(), "a dry run makes no run folder"


@pytest.mark.parametrize("args, expected", [
    (["--dry-run", "--gpu-mem", "huge"], "error: --gpu-mem 'huge': expected a size"),
    (["--set", "trainer.optim=adamw_8bit"], "error: trainer.optim: 'adamw_8bit' is a bitsandbytes optimizer"),
    (["--set", "quantization.load_in_4bit=true"], "error: quantization.load_in_4bit: 4-bit/8-bit loading"),
])
def test_cli_errors(tmp_path, tiny_checkpoint, args, expected):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"model": str(tiny_checkpoint), "data": {"train": EVAL, "eval": EVAL}}))
    proc = mathtune("train", str(recipe), *args, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith(expected), proc.stderr[-800:]
    assert not (tmp_path / "runs").exists()


def test_train_without_dry_run_still_trains(tmp_path, tiny_checkpoint):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({
        "model": str(tiny_checkpoint), "data": {"train": {**EVAL, "seed": 1, "size": 8}, "eval": EVAL},
        "lora": {"r": 2, "alpha": 4}, "trainer": {"max_steps": 1, "per_device_train_batch_size": 4, "disable_tqdm": True},
    }))
    proc = mathtune("train", str(recipe), "--output", str(tmp_path / "run"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert (tmp_path / "run" / "adapter" / "adapter_config.json").is_file()


def test_device_decides_trl_defaults(tmp_path, tiny_checkpoint):
    recipe = Recipe.model_validate({"model": str(tiny_checkpoint), "data": {"train": EVAL, "eval": EVAL}})
    gpu = build_plan(recipe, "r", tmp_path, 24 * 2**30, cuda=False).settings
    fp32 = recipe.model_copy(update={"speed": recipe.speed.model_copy(update={"precision": "fp32"})})
    cpu = build_plan(fp32, "r", tmp_path, None, cuda=False).settings
    # TRL's SFTConfig: bf16 and gradient checkpointing on; on CPU mathtune turns checkpointing off and computes in
    # the precision the processor is fast at (train/sft.py, mathtune.precision): fp32 when asked for it
    assert (gpu.compute_bytes, gpu.gradient_checkpointing, gpu.gpu) == (2, True, True)
    assert (cpu.compute_bytes, cpu.gradient_checkpointing, cpu.gpu) == (4, False, False)
    bf16 = recipe.model_copy(update={"speed": recipe.speed.model_copy(update={"precision": "bf16"})})
    assert build_plan(bf16, "r", tmp_path, None, cuda=False).settings.compute_bytes == 2
    assert gpu.optim == cpu.optim == "adamw_torch_fused" and gpu.max_length == SFT_DEFAULTS["max_length"]


def test_sharded_plans_divide_what_each_strategy_shards():
    """--num-processes / --strategy: DDP keeps everything per device (plus its gradient buckets), ZeRO-2 divides
    gradients and optimizer state, FSDP full shard and ZeRO-3 divide weights too and add the gathered units."""
    from mathtune.plan.arch import Arch
    from mathtune.plan.memory import MemorySettings
    from mathtune.plan.sharding import sharded_estimate

    h, i, layers, vocab = 256, 512, 4, 1000
    linears = [(f"model.layers.{n}.self_attn.{p}", h, h) for n in range(layers) for p in ("q_proj", "k_proj", "v_proj", "o_proj")]
    linears += [(f"model.layers.{n}.mlp.{p}", a, b) for n in range(layers)
                for p, a, b in (("gate_proj", h, i), ("up_proj", h, i), ("down_proj", i, h))]
    linears.append(("lm_head", h, vocab))
    params = sum(a * b for _, a, b in linears) + vocab * h
    arch = Arch(source="test", model_type="llama", layers=layers, hidden=h, intermediate=i, vocab=vocab, q_dim=h,
                kv_dim=h, tied=False, params=params, linears=linears)
    s = MemorySettings(batch=2, max_length=64, lora_r=8)
    one = sharded_estimate(arch, s, 1, "ddp")
    ddp, z2, fsdp, z3 = (sharded_estimate(arch, s, 8, k) for k in ("ddp", "zero2", "fsdp", "zero3"))
    assert ddp.get("weights") == one.get("weights") and ddp.get("DDP gradient buckets") == one.get("gradients")
    assert z2.get("weights") == one.get("weights") and z2.get("optimizer state") == one.get("optimizer state") / 8
    assert fsdp.get("weights") == one.get("weights") / 8 and fsdp.get("gradients") == one.get("gradients") / 8
    layer = sum(a * b for n, a, b in linears if ".layers.0." in n) + 2 * h
    assert fsdp.get("gathered for compute") == 2 * 4 * max(layer, vocab * h)
    assert z3.total == fsdp.total < z2.total < ddp.total
    assert ddp.get("activations") == one.get("activations"), "the per-device batch sets the activations"
