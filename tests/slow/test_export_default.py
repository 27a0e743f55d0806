"""Export on the embedded default: `mathtune export` writes a merged checkpoint and a GGUF (with its BPE tokenizer)
that both reload and generate greedily exactly what the adapter-applied model generates."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from mathtune.models import convert_default, load_adapter, load_model, load_tokenizer

pytestmark = pytest.mark.slow
QUESTIONS = ["What is 12 + 7 - 3?", "44 + 27 - 33 =", "Tom has 5 apples and buys 8 more. How many now?"]


def greedy(model, tok) -> list[str]:
    model.eval()
    outs = []
    for q in QUESTIONS:
        text = tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
        ids = tok(text, return_tensors="pt").input_ids
        with torch.no_grad():
            gen = model.generate(ids, max_new_tokens=16, do_sample=False, pad_token_id=tok.pad_token_id)
        outs.append(tok.decode(gen[0, ids.shape[1]:]))
    return outs


def test_merged_and_gguf_exports_generate_like_the_adapter(tmp_path):
    from peft import LoraConfig, get_peft_model

    home = Path(os.environ.get("MATHTUNE_HOME", tmp_path / "home"))
    base = str(convert_default(home))
    torch.manual_seed(0)
    peft = get_peft_model(load_model(base), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"]))
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.02)
    adapter = tmp_path / "adapter"
    peft.save_pretrained(adapter)
    tok = load_tokenizer(base)
    tok.save_pretrained(adapter)
    reference = greedy(load_adapter(load_model(base), adapter), tok)
    assert reference != greedy(load_model(base), tok), "the adapter must change what the base generates"

    proc = subprocess.run(
        [sys.executable, "-m", "mathtune", "export", str(adapter), "--merged", str(tmp_path / "merged"),
         "--gguf", str(tmp_path / "model.gguf"), "--gguf-dtype", "f32"],
        capture_output=True, text=True, timeout=600,
        env={"PATH": "/usr/bin:/bin", "MATHTUNE_HOME": str(home), "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]

    merged = tmp_path / "merged"
    assert greedy(AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32), load_tokenizer(str(merged))) == reference
    gguf_tok = AutoTokenizer.from_pretrained(tmp_path, gguf_file="model.gguf")
    text = tok.apply_chat_template([{"role": "user", "content": QUESTIONS[2]}], tokenize=False, add_generation_prompt=True)
    assert gguf_tok(text).input_ids == tok(text).input_ids, "the GGUF's tokenizer must tokenize like the original"
    gguf_model = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="model.gguf", dtype=torch.float32)
    assert greedy(gguf_model, tok) == reference
