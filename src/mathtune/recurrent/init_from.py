"""Build a recurrent-depth model from a standard Llama checkpoint: early layers -> prelude, middle -> core, rest -> coda.

Default split (`default_split`): the core is the middle fifth of the stack, prelude and coda share the rest; for
SmolLM2-135M (30 layers, the embedded default) that is prelude = layers 0-11, core = 12-17, coda = 18-29. No layer is
dropped, so at r = 1 the recurrent model runs the original 30 layers in their order.

Why r = 1 reproduces the original network: the first latent state is the prelude output itself (`state_init:
embed`) and the adapter starts as [mix * I | (1 - mix) * I], so the first iteration's core input is
mix * e + (1 - mix) * e = e, exactly what layer 12 received in the original (up to float rounding of that sum, ~1e-7
relative). Further iterations then feed the core mix * s + (1 - mix) * e: a damped re-application of the same layers
anchored on the prelude output, which training (LoRA reaches the adapter too) is free to change. mix = 1 would be
plain layer looping, mix = 0 would make every iteration recompute the first one (r would do nothing).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from mathtune.errors import UserError
from mathtune.recurrent.configuration import RecurrentConfig
from mathtune.recurrent.modeling import RecurrentForCausalLM

COMPLETE_MARKER = ".mathtune-complete"
_DROP_KEYS = ("model_type", "architectures", "num_hidden_layers", "layer_types", "auto_map", "_name_or_path")


def default_split(num_layers: int) -> tuple[int, int, int]:
    """(prelude, core, coda): the middle fifth (at least one layer) as core, the rest split evenly around it."""
    core = max(1, num_layers // 5)
    prelude = (num_layers - core) // 2
    return prelude, core, num_layers - core - prelude


def resolve_split(num_layers: int, prelude: int | None, core: int | None) -> tuple[int, int, int]:
    """The split asked for (None = default) with coda = the remaining layers; a split that does not fit is an error."""
    d_prelude, d_core, _ = default_split(num_layers)
    prelude = d_prelude if prelude is None else prelude
    core = d_core if core is None else core
    coda = num_layers - prelude - core
    if prelude < 0 or core < 1 or coda < 0:
        raise UserError(
            f"recurrent.init_from: prelude={prelude}, core={core} does not fit a {num_layers}-layer model "
            "(need core >= 1 and prelude + core <= layers; the coda takes the rest)"
        )
    return prelude, core, coda


def recurrent_config(llama_config: Any, prelude: int, core: int, **settings: Any) -> RecurrentConfig:
    """A RecurrentConfig with the Llama config's dimensions and the given split and depth settings."""
    if getattr(llama_config, "model_type", None) != "llama":
        raise UserError(
            f"recurrent.init_from: expected a Llama checkpoint (model_type 'llama'), got {llama_config.model_type!r}"
        )
    fields = {k: v for k, v in llama_config.to_dict().items() if k not in _DROP_KEYS}
    _, _, coda = resolve_split(llama_config.num_hidden_layers, prelude, core)
    return RecurrentConfig(n_prelude=prelude, n_core=core, n_coda=coda, **fields, **settings)


def _layer_name(i: int, prelude: int, core: int) -> str:
    if i < prelude:
        return f"model.prelude.{i}."
    if i < prelude + core:
        return f"model.core.{i - prelude}."
    return f"model.coda.{i - prelude - core}."


def from_llama(llama, prelude: int | None = None, core: int | None = None, **settings: Any) -> RecurrentForCausalLM:
    """Copy a LlamaForCausalLM's weights into a RecurrentForCausalLM (the adapter gets its identity-mix init)."""
    n = llama.config.num_hidden_layers
    prelude, core, _ = resolve_split(n, prelude, core)
    config = recurrent_config(llama.config, prelude, core, **settings)
    model = RecurrentForCausalLM(config).to(llama.dtype)
    state = {}
    for key, value in llama.state_dict().items():
        if key.startswith("model.layers."):
            idx, rest = key[len("model.layers.") :].split(".", 1)
            key = _layer_name(int(idx), prelude, core) + rest
        state[key] = value
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if k != "model.adapter.weight" and not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise RuntimeError(f"weights did not map onto the recurrent model: missing {missing}, unexpected {unexpected}")
    model.generation_config = llama.generation_config
    return model.eval()


def converted_name(source: Path, prelude: int, core: int, mix: float) -> str:
    """Folder name of a cached conversion: the source folder's name and the split."""
    return f"{source.name}-recurrent-p{prelude}-c{core}-mix{mix:g}"


def convert_checkpoint(source: str, home: Path, prelude: int | None, core: int | None, injection_mix: float) -> str:
    """Convert the Llama checkpoint folder `source` once (cached under `home/models`, written atomically)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    src = Path(source)
    if not (src / "config.json").is_file():
        raise UserError(f"recurrent.init_from: {source!r} is not a local checkpoint folder (init_from needs one)")
    layers = AutoConfig.from_pretrained(src).num_hidden_layers
    prelude, core, _ = resolve_split(layers, prelude, core)
    final = home / "models" / converted_name(src, prelude, core, injection_mix)
    if (final / COMPLETE_MARKER).is_file():
        return str(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        llama = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
        model = from_llama(llama, prelude, core, injection_mix=injection_mix)
        model.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(src).save_pretrained(tmp)
        (tmp / COMPLETE_MARKER).write_text(f"converted from {src} (prelude {prelude}, core {core})\n")
        if final.exists():  # a concurrent conversion finished first, or a half-written older folder
            if (final / COMPLETE_MARKER).is_file():
                return str(final)
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return str(final)
