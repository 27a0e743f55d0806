"""A recipe's `trainer:` block checked at load against the TRL config class its stage passes it to.

Names, types and the values TRL itself rejects are caught when the recipe is read, before any model or data work;
TRL accepts some values that only fail (or silently misbehave) mid-training, such as a batch size of 0 or a negative
learning rate, so those ranges are checked here too.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import tempfile
import typing
import warnings
from typing import Any, Callable

# key -> (lowest allowed, whether the bound itself is allowed); TRL and transformers accept these out of range
RANGES: dict[str, tuple[float, bool]] = {
    "per_device_train_batch_size": (1, True),
    "per_device_eval_batch_size": (1, True),
    "gradient_accumulation_steps": (1, True),
    "learning_rate": (0, True),
    "weight_decay": (0, True),
    "warmup_steps": (0, True),
    "warmup_ratio": (0, True),
    "num_train_epochs": (0, False),
    "max_grad_norm": (0, True),
    "logging_steps": (0, False),
    "save_steps": (0, False),
    "eval_steps": (0, False),
    "max_length": (1, True),
    "max_completion_length": (1, True),
    "max_prompt_length": (1, True),
    "num_generations": (2, True),
    "temperature": (0, False),
    "beta": (0, True),
}
# Device settings are checked where the device is known (train/sft.py check_device_levers); a GPU recipe must still
# load on a CPU-only machine, so they are left out of the trial construction below.
DEVICE_KEYS = {"bf16", "fp16", "tf32", "use_cpu", "use_vllm", "bf16_full_eval", "fp16_full_eval"}


@functools.cache
def _adapters(config_cls: type) -> dict[str, Any]:
    from pydantic import TypeAdapter

    hints = typing.get_type_hints(config_cls)
    return {f.name: TypeAdapter(hints[f.name]) for f in dataclasses.fields(config_cls)}


def check_trainer_block(trainer: dict[str, Any], config_cls: type, defaults: dict[str, Any],
                        stage_check: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Raise ValueError (one line, naming `trainer.KEY`) when `trainer` is not something `config_cls` accepts.

    Each key is checked alone first (name, type, range); then `stage_check`, with the defaults filled in, for what
    concerns several keys (GRPO's groups); then the config is built once, for the rest TRL itself checks."""
    from pydantic import ValidationError

    from mathtune.schema import expected_text

    adapters = _adapters(config_cls)
    name = f"trl.{config_cls.__name__}"
    for key, value in trainer.items():
        if key not in adapters:
            close = difflib.get_close_matches(key, sorted(adapters), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"trainer.{key}: not an argument of {name}{hint}")
        try:
            adapters[key].validate_python(value)
        except ValidationError as exc:
            raise ValueError(f"trainer.{key}: {name} expects {expected_text(exc.errors()[0])}, got {value!r}") from None
        low = RANGES.get(key)
        if low is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
            bound, inclusive = low
            if value < bound or (value == bound and not inclusive):
                relation = ">=" if inclusive else ">"
                raise ValueError(f"trainer.{key}: expected a value {relation} {bound:g}, got {value!r}")
    if stage_check is not None:
        stage_check({**defaults, **trainer})
    args = {k: v for k, v in {**defaults, **trainer}.items() if k not in DEVICE_KEYS}
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation notices belong to the run, not to every recipe load
        try:
            config_cls(**args, output_dir=tmp, use_cpu=True)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"trainer: {name} rejects these settings: {str(exc).splitlines()[0]}") from None
    return trainer
