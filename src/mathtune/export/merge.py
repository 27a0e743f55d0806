"""Merge a LoRA adapter into its base model and save a plain checkpoint + tokenizer: `mathtune export X --merged DIR`."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from mathtune.errors import UserError


def find_adapter(source: Path) -> Path:
    """The adapter folder of a run folder (RUN/adapter) or the folder itself when it holds an adapter."""
    for folder in (source / "adapter", source):
        if (folder / "adapter_config.json").is_file():
            return folder
    raise UserError(f"{source}: no LoRA adapter here (expected a run folder with adapter/ or an adapter folder)")


def base_model_of(source: Path, adapter: Path, home: Path) -> str:
    """The base the adapter was trained on: the run's recipe `model:` when there is one, else the adapter's config."""
    from mathtune.models import resolve_model

    recipe = source / "recipe.yaml"
    if recipe.is_file():
        import yaml

        model = (yaml.safe_load(recipe.read_text()) or {}).get("model")
        if model:
            return resolve_model(model, home)
    base = json.loads((adapter / "adapter_config.json").read_text()).get("base_model_name_or_path")
    if not base:
        raise UserError(f"{adapter}/adapter_config.json: base_model_name_or_path is empty; export from the run folder")
    return resolve_model(base, home)


def merged_model(source: Path, home: Path):
    """(model with the adapter merged in, tokenizer, adapter folder), in float32 on CPU."""
    from mathtune.models import load_adapter, load_model, load_tokenizer

    adapter = find_adapter(source)
    base = base_model_of(source, adapter, home)
    tok_from = str(adapter) if (adapter / "tokenizer_config.json").is_file() else base
    model = load_adapter(load_model(base), adapter).merge_and_unload()
    model.eval()
    return model, load_tokenizer(tok_from), adapter


def save_atomic(model, tokenizer, out: Path) -> Path:
    """Save checkpoint + tokenizer to `out` through a temporary sibling folder renamed in one step."""
    if out.exists() and any(out.iterdir()):
        raise UserError(f"--merged {out}: folder exists and is not empty; choose another folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        model.save_pretrained(tmp)  # safetensors
        tokenizer.padding_side = "right"  # a plain checkpoint: the usual default for whoever loads it next
        tokenizer.save_pretrained(tmp)
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out
