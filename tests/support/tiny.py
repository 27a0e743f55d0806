"""A tiny random Llama and a character tokenizer with a chat template, built offline in milliseconds."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

CHAT_TEMPLATE = (
    "{% for m in messages %}<{{ m['role'][0] }}>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<a>{% endif %}"
)


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Character-level tokenizer over printable ASCII plus <pad>, <eos>, <unk>, with a small chat template."""
    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2, **{chr(c): c - 29 for c in range(32, 127)}}
    vocab["\n"] = 98
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", unk_token="<unk>", pad_token="<pad>")
    fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_model(seed: int = 0) -> LlamaForCausalLM:
    """A 2-layer Llama with a 99-token vocabulary and random weights."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=64, eos_token_id=1, pad_token_id=0, bos_token_id=None, max_position_embeddings=1024,
    )
    return LlamaForCausalLM(config)


def save_tiny(path: Path) -> Path:
    """Save the tiny model and tokenizer as a checkpoint folder a recipe's `model:` can name."""
    tiny_model().save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path
