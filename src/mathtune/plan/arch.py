"""Model architecture for planning: parameter counts and layer shapes, from a config, without loading weights.

A config comes from the model folder (a local checkpoint, the converted default, or a hub model already in the local
cache), else from the recipe's `plan.architecture`, else from KNOWN_ARCHITECTURES. The model is then built on
PyTorch's `meta` device, so every count is exact for that config and no weight is allocated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Shapes of models the shipped recipes name, copied from each hub repository's config.json (fields that change the
# parameter count only), so a dry run can size them offline. The parameter totals they give were checked against
# the model cards: TinyLlama 1.10B, Llama-3.1-8B 8.03B, Qwen2.5-1.5B 1.54B, R1-Distill-Qwen-1.5B 1.78B (its LM head
# is not tied), Qwen2.5-Math-7B 7.62B, SmolLM2-135M 135M.
_TINYLLAMA = dict(model_type="llama", hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                  num_attention_heads=32, num_key_value_heads=4, vocab_size=32000, tie_word_embeddings=False)
_LLAMA31_8B = dict(model_type="llama", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                   num_attention_heads=32, num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=False)
_QWEN25_15B = dict(model_type="qwen2", hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                   num_attention_heads=12, num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True)
_QWEN25_MATH_7B = dict(model_type="qwen2", hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                       num_attention_heads=28, num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False)
_SMOLLM2_135M = dict(model_type="llama", hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                     num_attention_heads=9, num_key_value_heads=3, head_dim=64, vocab_size=49152,
                     tie_word_embeddings=True)
KNOWN_ARCHITECTURES: dict[str, dict[str, Any]] = {
    "TinyLlama/TinyLlama-1.1B-Chat-v1.0": _TINYLLAMA,
    "TinyLlama/TinyLlama_v1.1": _TINYLLAMA,
    "meta-llama/Llama-3.1-8B": _LLAMA31_8B,
    "meta-llama/Llama-3.1-8B-Instruct": _LLAMA31_8B,
    "meta-llama/Meta-Llama-3.1-8B": _LLAMA31_8B,
    "meta-llama/Meta-Llama-3.1-8B-Instruct": _LLAMA31_8B,
    "Qwen/Qwen2.5-1.5B": _QWEN25_15B,
    "Qwen/Qwen2.5-1.5B-Instruct": _QWEN25_15B,
    "Qwen/Qwen2.5-Math-1.5B": _QWEN25_15B,
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B": {**_QWEN25_15B, "tie_word_embeddings": False},
    "Qwen/Qwen2.5-Math-7B": _QWEN25_MATH_7B,
    "Qwen/Qwen2.5-Math-7B-Instruct": _QWEN25_MATH_7B,
    "HuggingFaceTB/SmolLM2-135M": _SMOLLM2_135M,
    "HuggingFaceTB/SmolLM2-135M-Instruct": _SMOLLM2_135M,
}


@dataclass
class Arch:
    """What the memory estimate needs to know about a model."""

    source: str  # where the shapes came from, shown in the plan
    model_type: str
    layers: int
    hidden: int
    intermediate: int
    vocab: int
    q_dim: int  # attention heads x head dim
    kv_dim: int  # key/value heads x head dim
    tied: bool
    params: int
    # every nn.Linear as (qualified name, in_features, out_features); LoRA targets and 4-bit weights are among these
    linears: list[tuple[str, int, int]] = field(default_factory=list)


def _config_from(model: str, local: str | None, recipe_arch: dict | None):
    """(transformers config, where it came from), or (None, why not)."""
    from transformers import AutoConfig

    why = ""
    if local is not None:
        try:
            return AutoConfig.from_pretrained(local, local_files_only=True), f"config.json of {local}"
        except (OSError, ValueError) as exc:
            why = f"no config for {model!r} offline ({str(exc).splitlines()[0][:160]}); "
    if recipe_arch is not None:
        spec = dict(recipe_arch)
        return AutoConfig.for_model(spec.pop("model_type", "llama"), **spec), "the recipe's plan.architecture"
    if model in KNOWN_ARCHITECTURES:
        spec = dict(KNOWN_ARCHITECTURES[model])
        return AutoConfig.for_model(spec.pop("model_type"), **spec), "mathtune's table of known architectures"
    return None, (why + f"{model!r} is not in the table of known architectures; "
                  "give its shape in the recipe's plan.architecture")


def arch_from_config(config, source: str) -> Arch:
    """Count parameters and list the linear layers of `config`'s causal LM, built on the meta device."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    linears = [(name, m.in_features, m.out_features) for name, m in model.named_modules()
               if isinstance(m, torch.nn.Linear)]
    text = config.get_text_config()
    heads = text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    return Arch(
        source=source,
        model_type=text.model_type,
        layers=text.num_hidden_layers,
        hidden=text.hidden_size,
        intermediate=getattr(text, "intermediate_size", 4 * text.hidden_size),
        vocab=text.vocab_size,
        q_dim=heads * head_dim,
        kv_dim=(getattr(text, "num_key_value_heads", None) or heads) * head_dim,
        tied=bool(getattr(text, "tie_word_embeddings", False)),
        params=sum(p.numel() for p in model.parameters()),
        linears=linears,
    )


def resolve_arch(model: str, local: str | None, recipe_arch: dict | None = None) -> tuple[Arch | None, str]:
    """The model's architecture and where it came from, or (None, why it cannot be resolved offline)."""
    config, source = _config_from(model, local, recipe_arch)
    if config is None:
        return None, source
    return arch_from_config(config, source), source


def local_model_path(model: str, home: Path) -> tuple[str | None, str]:
    """(what `from_pretrained` takes for `model`, "") or (None, why it cannot be resolved); nothing is downloaded."""
    from mathtune.errors import UserError
    from mathtune.models import resolve_model

    try:
        return resolve_model(model, home), ""
    except UserError as exc:
        return None, str(exc)
