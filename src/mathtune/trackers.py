"""Experiment trackers: the recipe's `trainer.report_to` (tensorboard, trackio, wandb, mlflow: what TRL's config
accepts) for SFT, GRPO and verifier training, and the evaluation summaries of the same run logged beside them.

Training scalars are logged by transformers' own callbacks; this module only checks the tracker is installed, points
TensorBoard at the run folder (RUN/tensorboard, not inside checkpoints/) and logs evaluation summaries, which no
trainer sees, through accelerate's tracker classes. The default stays `report_to: none`.

    mathtune run RECIPE --set trainer.report_to=tensorboard   then   tensorboard --logdir RUN/tensorboard
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mathtune import distributed
from mathtune.errors import UserError

log = logging.getLogger("mathtune")
TENSORBOARD_DIR = "tensorboard"


def report_to(trainer: dict[str, Any]) -> list[str]:
    """The tracker names of a recipe's `trainer:` block (none by default)."""
    value = trainer.get("report_to", "none")
    names = [value] if isinstance(value, str) else list(value or [])
    return [n for n in names if n != "none"]


def check_report_to(trainer: dict[str, Any]) -> None:
    """Fail (one line) when `trainer.report_to` names a tracker transformers does not know or that is not installed."""
    from transformers.integrations import get_available_reporting_integrations
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    available = set(get_available_reporting_integrations())
    for name in report_to(trainer):
        if name == "all":
            continue
        if name not in INTEGRATION_TO_CALLBACK:
            raise UserError(f"trainer.report_to: unknown tracker {name!r} (known: {', '.join(sorted(INTEGRATION_TO_CALLBACK))})")
        if name not in available:
            raise UserError(f"trainer.report_to: {name!r} is not installed (pip install {name})")


def point_trackers(trainer, run_dir: Path) -> None:
    """Send the trainer's TensorBoard events to RUN/tensorboard, where the evaluation summaries go too."""
    from transformers.integrations import TensorBoardCallback

    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback):
            callback.logging_dir = str(run_dir / TENSORBOARD_DIR)  # read when training begins (on_train_begin)


def summary_scalars(summary: dict[str, Any], prefix: str) -> dict[str, float]:
    """The numbers of an evaluation summary as flat `eval/PREFIX/KEY` scalars (per-grader accuracies included)."""
    out = {f"eval/{prefix}/{k}": float(v) for k, v in summary.items()
           if isinstance(v, (int, float)) and not isinstance(v, bool)}
    for grader, values in (summary.get("accuracy_by_grader") or {}).items():
        if "accuracy" in values:
            out[f"eval/{prefix}/accuracy_{grader}"] = float(values["accuracy"])
    return out


def _tracker(name: str, run_name: str, run_dir: Path):
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS

    if name == "tensorboard":  # the folder the trainer's events are in: one TensorBoard run
        return LOGGER_TYPE_TO_CLASS[name]("", str(run_dir / TENSORBOARD_DIR))
    if name == "mlflow":
        return LOGGER_TYPE_TO_CLASS[name](experiment_name=run_name, run_name=run_name)
    if name not in LOGGER_TYPE_TO_CLASS:
        return None
    return LOGGER_TYPE_TO_CLASS[name](run_name)  # wandb, trackio, ...: a run of the recipe's name


def log_summary(trainer: dict[str, Any], run_name: str, run_dir: Path, prefix: str, summary: dict, step: int) -> None:
    """Log an evaluation summary to every tracker of the recipe (rank 0 only; nothing with report_to none)."""
    if not distributed.is_main_process():
        return
    for name in report_to(trainer):
        tracker = _tracker(name, run_name, run_dir)
        if tracker is None:
            log.info("trainer.report_to: %s gets the training scalars only (accelerate has no tracker of that name)", name)
            continue
        tracker.start()
        tracker.log(summary_scalars(summary, prefix), step=step)
        tracker.finish()
