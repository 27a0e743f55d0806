"""Where recurrent-depth models meet mathtune's model loading: remote-code guard, conversion, iteration counts.

Hub recurrent models (huginn-0125: `tomg-group-umd/huginn-0125`) ship their own modeling code. mathtune runs it only
when the recipe says `recurrent: {trust_remote_code: true}`, because that code executes with the user's rights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mathtune.errors import UserError

if TYPE_CHECKING:
    from mathtune.recurrent.recipe import RecurrentRecipe

HUGINN_TYPE = "huginn_raven"  # model_type of huginn-0125's config
# Hub ids known to need their own code, refused before any download when remote code is not allowed.
KNOWN_REMOTE_CODE = ("huginn",)


def _needs_remote_code(path: str) -> bool:
    config = Path(path) / "config.json"
    if config.is_file():
        try:
            return bool(json.loads(config.read_text()).get("auto_map"))
        except ValueError:
            return False
    return any(name in path.lower() for name in KNOWN_REMOTE_CODE)


def trust_remote_code(path: str, block: "RecurrentRecipe | None") -> bool:
    """Whether to let transformers run `path`'s own code; a model that needs it without the recipe's consent is an
    error that says why."""
    allowed = block is not None and block.trust_remote_code
    if not allowed and _needs_remote_code(path):
        raise UserError(
            f"model: {path!r} ships its own modeling code (a recurrent-depth model such as huginn-0125); mathtune "
            "runs a checkpoint's code only when the recipe says `recurrent: {trust_remote_code: true}`, because that "
            "code runs with your rights: read it first"
        )
    return allowed


def resolve(path: str, home: Path, block: "RecurrentRecipe | None") -> str:
    """The checkpoint to load: `path`, or its cached recurrent conversion when the recipe has `recurrent.init_from`."""
    if block is None or block.init_from is None:
        return path
    from mathtune.recurrent.init_from import convert_checkpoint

    spec = block.init_from
    return convert_checkpoint(path, home, spec.prelude, spec.core, spec.injection_mix)


def is_recurrent(model: Any) -> bool:
    """Whether `model` (or the model inside a peft wrapper) has an iteration count mathtune knows how to set."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(base.config, "model_type", None) in ("mathtune_recurrent", HUGINN_TYPE)


def _huginn_steps_hook(module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    # huginn's forward takes `num_steps`; without it, eval mode runs config.mean_recurrence steps and training mode
    # samples. A fixed count set here applies outside training (generation and evaluation).
    steps = getattr(module, "_mathtune_num_steps", None)
    if steps is not None and not module.training and kwargs.get("num_steps") is None:
        kwargs["num_steps"] = steps
    return args, kwargs


def set_num_steps(model: Any, steps: int) -> None:
    """Set the core iteration count used at evaluation (mathtune's model: config.num_steps; huginn: `num_steps`)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    kind = getattr(base.config, "model_type", None)
    if kind == "mathtune_recurrent":
        base.config.num_steps = int(steps)
    elif kind == HUGINN_TYPE:
        if not hasattr(base, "_mathtune_num_steps"):
            base.register_forward_pre_hook(_huginn_steps_hook, with_kwargs=True)
        base._mathtune_num_steps = int(steps)
    else:
        raise UserError(f"num_steps: {type(base).__name__} is not a recurrent-depth model (it has no iteration count)")


def configure(model: Any, block: "RecurrentRecipe | None") -> Any:
    """Apply the recipe's depth settings to a loaded model; a non-recurrent model with such settings is an error."""
    if block is None:
        return model
    asked = {k: getattr(block, k) for k in ("num_steps", "mean_recurrence", "backprop_depth")}
    if not any(v is not None for v in asked.values()):
        return model
    if not is_recurrent(model):
        raise UserError(f"recurrent: the model ({type(model).__name__}) is not a recurrent-depth model; "
                        "use recurrent.init_from to build one from a Llama checkpoint")
    if asked["num_steps"] is not None:
        set_num_steps(model, asked["num_steps"])
    huginn = model.config.model_type == HUGINN_TYPE
    if asked["mean_recurrence"] is not None:
        model.config.mean_recurrence = asked["mean_recurrence"]
    if asked["backprop_depth"] is not None:
        setattr(model.config, "mean_backprop_depth" if huginn else "backprop_depth", asked["backprop_depth"])
    return model
