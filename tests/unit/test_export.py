"""Export: the merged checkpoint and the GGUF file reload and generate exactly what the adapter-applied model does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM

from mathtune.export.gguf import write_gguf
from mathtune.export.merge import find_adapter, merged_model, save_atomic
from mathtune.errors import UserError
from mathtune.models import load_adapter, load_model
from support.tiny import tiny_tokenizer

PROMPTS = ["12 + 34 =", "7 * 8 = ", "What is 9 - 4?"]


@pytest.fixture(scope="module")
def adapter(tiny_checkpoint, tmp_path_factory) -> Path:
    """A LoRA adapter on the tiny model with random (non-zero) B matrices, so merging changes the outputs."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(1)
    peft = get_peft_model(load_model(str(tiny_checkpoint)), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.5)
    out = tmp_path_factory.mktemp("adapter") / "adapter"
    peft.save_pretrained(out)
    tiny_tokenizer().save_pretrained(out)
    return out


def greedy(model, tok=None) -> list[list[int]]:
    tok = tok or tiny_tokenizer()
    model.eval()
    outs = []
    for prompt in PROMPTS:
        ids = tok(prompt, return_tensors="pt").input_ids
        with torch.no_grad():
            gen = model.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=0, eos_token_id=tok.eos_token_id)
        outs.append(gen[0, ids.shape[1]:].tolist())
    return outs


@pytest.fixture(scope="module")
def reference(tiny_checkpoint, adapter):
    return greedy(load_adapter(load_model(str(tiny_checkpoint)), adapter))


def test_merged_checkpoint_generates_like_the_adapter(tiny_checkpoint, adapter, reference, tmp_path):
    assert reference != greedy(load_model(str(tiny_checkpoint))), "the adapter must change what the base generates"
    model, tok, found = merged_model(adapter, tmp_path / "home")
    assert found == adapter and not any("lora" in n for n, _ in model.named_parameters())
    out = save_atomic(model, tok, tmp_path / "merged")
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert greedy(AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)) == reference
    with pytest.raises(UserError, match="not empty"):
        save_atomic(model, tok, out)


def test_gguf_round_trip(adapter, reference, tmp_path):
    model, _, _ = merged_model(adapter, tmp_path / "home")
    path = write_gguf(model, None, tmp_path / "m.gguf", "f32")
    back = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=path.name, dtype=torch.float32)
    assert greedy(back) == reference
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():  # the q/k permutation is undone exactly on reload: f32 logits are bit-identical
        assert torch.equal(back(ids).logits, model(ids).logits)
    half = write_gguf(model, None, tmp_path / "h.gguf", "f16")
    assert half.stat().st_size < path.stat().st_size
    back16 = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=half.name, dtype=torch.float32)
    with torch.no_grad():
        assert torch.allclose(back16(ids).logits, model(ids).logits, atol=5e-2)


def test_run_folder_uses_its_recipe_model(tiny_checkpoint, adapter, tmp_path):
    run = tmp_path / "run"
    (run / "adapter").mkdir(parents=True)
    for f in adapter.iterdir():
        (run / "adapter" / f.name).write_bytes(f.read_bytes())
    (run / "recipe.yaml").write_text(yaml.safe_dump({"model": str(tiny_checkpoint)}))
    assert find_adapter(run) == run / "adapter"
    with pytest.raises(UserError, match="no LoRA adapter"):
        find_adapter(tmp_path)


def mathtune(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mathtune", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={"PATH": "/usr/bin:/bin", "MATHTUNE_HOME": str(cwd / "home"),
                                            "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
                                            # this checkout's code, whatever the venv's editable install points at
                                            "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")})


def test_cli_export_and_its_errors(adapter, tmp_path):
    proc = mathtune("export", str(adapter), "--merged", str(tmp_path / "m"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert (tmp_path / "m" / "model.safetensors").is_file()
    for args, expected in [
        ([str(adapter)], "error: export: nothing to do"),
        ([str(tmp_path), "--merged", str(tmp_path / "x")], "no LoRA adapter here"),
        ([str(adapter), "--merged", str(tmp_path / "m")], "folder exists and is not empty"),
        ([str(adapter), "--gguf", str(tmp_path / "t.gguf")], "tokenizer model 'WordLevel' is not supported"),
        ([str(adapter), "--gguf", str(tmp_path / "t.gguf"), "--gguf-dtype", "q4"], "--gguf-dtype 'q4'"),
    ]:
        proc = mathtune("export", *args, cwd=tmp_path)
        assert proc.returncode == 2 and expected in proc.stderr, (args, proc.stderr[-800:])
    assert not (tmp_path / "t.gguf").exists()
