"""Write a (merged) model as one GGUF file for llama.cpp and Ollama: `mathtune export X --gguf FILE`.

Follows llama.cpp's convert_hf_to_gguf.py for the architectures mathtune trains (Llama, Qwen2): tensor names from
gguf-py's TensorNameMap, Llama's q/k rows permuted to GGML's rotary layout (transformers' GGUF loader undoes it), the
byte-level BPE tokenizer (vocabulary, merges, special ids, chat template). Weights in f32 or f16; norms stay f32.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mathtune.errors import UserError

ARCHES = {"llama": "LLAMA", "qwen2": "QWEN2"}
# llama.cpp picks its pre-tokenizer regex by this name; the ones of the models mathtune ships recipes for.
PRE_TOKENIZER = {49152: "smollm", 151936: "qwen2", 152064: "qwen2", 128256: "llama-bpe"}


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's LlamaModel.permute: HF's half-split rotary rows -> GGML's interleaved rows."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _tensors(model, arch_name: str, f16: bool):
    """(GGUF name, array) for every tensor of the model, in GGUF's naming and layout."""
    import gguf

    cfg = model.config
    name_map = gguf.get_tensor_name_map(getattr(gguf.MODEL_ARCH, arch_name), cfg.num_hidden_layers)
    tied = bool(getattr(cfg, "tie_word_embeddings", False))
    for name, tensor in model.state_dict().items():
        if tied and name == "lm_head.weight":
            continue  # llama.cpp reads a missing output.weight as tied to token_embd
        new = name_map.get_name(name, try_suffixes=(".weight", ".bias"))
        if new is None:
            raise UserError(f"--gguf: no GGUF name for tensor {name!r} of {cfg.model_type}")
        data = tensor.detach().float().numpy()
        if arch_name == "LLAMA" and name.endswith("q_proj.weight"):
            data = _permute(data, cfg.num_attention_heads)
        elif arch_name == "LLAMA" and name.endswith("k_proj.weight"):
            data = _permute(data, cfg.num_key_value_heads)
        yield new, data.astype(np.float16 if f16 and data.ndim == 2 else np.float32)


def _add_tokenizer(writer, tokenizer, vocab_size: int) -> None:
    """Byte-level BPE vocabulary, merges, token types, special ids and chat template."""
    import json

    import gguf

    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    model = spec.get("model", {})
    if model.get("type") != "BPE":
        raise UserError(f"--gguf: tokenizer model {model.get('type')!r} is not supported (byte-level BPE only)")
    vocab = tokenizer.get_vocab()
    by_id = {i: t for t, i in vocab.items()}
    special = {a["content"] for a in spec.get("added_tokens", []) if a.get("special")}
    added = {a["content"] for a in spec.get("added_tokens", [])}
    tokens, types = [], []
    for i in range(vocab_size):
        tok = by_id.get(i, f"[PAD{i}]")
        tokens.append(tok)
        types.append(gguf.TokenType.CONTROL if tok in special else
                     gguf.TokenType.USER_DEFINED if tok in added else
                     gguf.TokenType.UNUSED if i not in by_id else gguf.TokenType.NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(PRE_TOKENIZER.get(vocab_size, "default"))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for attr, add in (("bos_token_id", writer.add_bos_token_id), ("eos_token_id", writer.add_eos_token_id),
                      ("unk_token_id", writer.add_unk_token_id), ("pad_token_id", writer.add_pad_token_id)):
        value = getattr(tokenizer, attr, None)
        if value is not None:
            add(int(value))
    ids = tokenizer("a").input_ids  # llama.cpp prepends BOS only when the tokenizer itself does (Llama 3 does)
    writer.add_add_bos_token(bool(ids) and tokenizer.bos_token_id is not None and ids[0] == tokenizer.bos_token_id)
    if getattr(tokenizer, "chat_template", None):
        writer.add_chat_template(tokenizer.chat_template)


def write_gguf(model, tokenizer, path: Path, dtype: str = "f16", name: str = "mathtune-export") -> Path:
    """Write `model` (+ `tokenizer`, when given) to `path` atomically; dtype 'f32' or 'f16'."""
    import gguf

    cfg = model.config
    arch_name = ARCHES.get(cfg.model_type)
    if arch_name is None:
        raise UserError(f"--gguf: architecture {cfg.model_type!r} is not supported (supported: {', '.join(ARCHES)})")
    if dtype not in ("f32", "f16"):
        raise UserError(f"--gguf-dtype {dtype!r}: expected f32 or f16")
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    tmp = path.with_name(f".{path.name}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(tmp), gguf.MODEL_ARCH_NAMES[getattr(gguf.MODEL_ARCH, arch_name)])
    try:
        writer.add_name(name)
        writer.add_context_length(cfg.max_position_embeddings)
        writer.add_embedding_length(cfg.hidden_size)
        writer.add_block_count(cfg.num_hidden_layers)
        writer.add_feed_forward_length(cfg.intermediate_size)
        writer.add_head_count(cfg.num_attention_heads)
        writer.add_head_count_kv(cfg.num_key_value_heads)
        writer.add_rope_dimension_count(head_dim)
        rope = getattr(cfg, "rope_parameters", None) or {}
        writer.add_rope_freq_base(float(rope.get("rope_theta", getattr(cfg, "rope_theta", 10000.0))))
        writer.add_layer_norm_rms_eps(float(cfg.rms_norm_eps))
        writer.add_vocab_size(cfg.vocab_size)
        writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if dtype == "f16" else gguf.LlamaFileType.ALL_F32)
        if tokenizer is not None:
            _add_tokenizer(writer, tokenizer, cfg.vocab_size)
        for new, data in _tensors(model, arch_name, dtype == "f16"):
            writer.add_tensor(new, data)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
