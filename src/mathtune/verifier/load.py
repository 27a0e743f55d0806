"""Load a trained verifier from its run folder (recipe.yaml + verifier.json + adapter/), checking its base model."""

from __future__ import annotations

from pathlib import Path

from mathtune.errors import UserError
from mathtune.runs import read_json
from mathtune.verifier.heads import Verifier, load_base
from mathtune.verifier.train import INFO_FILE


def verifier_info(run: Path) -> dict:
    """What a verifier run records about itself (base model name and path, head); a clear error if it is not one."""
    info = read_json(run / INFO_FILE)
    if info is None or not (run / "adapter" / "adapter_config.json").is_file() or not (run / "recipe.yaml").is_file():
        raise UserError(f"verifier {run}: not a finished verifier run (expected recipe.yaml, {INFO_FILE} and "
                        "adapter/ from `mathtune verifier train`)")
    return info


def check_base(run: Path, model: str, home: Path) -> None:
    """Fail when the verifier in `run` was trained on another base model than `model` (a name, folder or hub id)."""
    from mathtune.models import resolve_model

    info = verifier_info(run)
    asked = resolve_model(model, home)
    if model != info["base_model"] and str(Path(asked).resolve()) != str(Path(info["base_path"]).resolve()):
        raise UserError(f"verifier {run}: trained on base model {info['base_model']!r} ({info['base_path']}), "
                        f"not {model!r}; use --model {info['base_model']} or a verifier trained on {model!r}")


def load_verifier(run: Path, home: Path, untrained: bool = False) -> Verifier:
    """The verifier of a run on its recorded base; `untrained` scores with the base alone (same head and prompt)."""
    from mathtune.config import load_recipe
    from mathtune.models import load_adapter, load_tokenizer, resolve_model

    info = verifier_info(run)
    recipe = load_recipe(str(run / "recipe.yaml"))
    path = resolve_model(recipe.model, home)
    tokenizer = load_tokenizer(path)
    if untrained:
        import torch

        torch.manual_seed(recipe.seed)  # the same seeded `score` init the training started from
    model = load_base(path, info["head"], tokenizer, recipe.quantization)
    if not untrained:
        model = load_adapter(model, run / "adapter")
    return Verifier(model, tokenizer, recipe.verifier, recipe.format)
