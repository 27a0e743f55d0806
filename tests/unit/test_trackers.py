"""Trackers from the recipe's `trainer.report_to`: TensorBoard offline on the tiny model (training scalars and the
evaluation summary in one event folder of the run), the default `none`, and an unknown or missing tracker."""

from __future__ import annotations

import pytest
from datasets import Dataset

from mathtune.config import Recipe
from mathtune.data.formats import to_prompt_completion
from mathtune.errors import UserError
from mathtune.models import load_model, load_tokenizer
from mathtune.trackers import TENSORBOARD_DIR, check_report_to, log_summary, report_to
from mathtune.train.sft import train_sft

ROWS = [{"question": f"{a} + {b} =", "answer": str(a + b), "solution": f"{a} + {b} = {a + b}", "source": "t"}
        for a in range(3) for b in range(3)]


def recipe(**trainer) -> Recipe:
    return Recipe.model_validate({
        "data": {"eval": {"source": "reasoning_gym", "task": "chain_sum", "size": 2, "seed": 9}},
        "lora": {"r": 4, "alpha": 8},
        "trainer": {"max_steps": 3, "per_device_train_batch_size": 3, "save_steps": 10, "logging_steps": 1,
                    "disable_tqdm": True, **trainer},
    })


def scalars(folder) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [e.value for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_gets_training_and_evaluation_scalars(tiny_checkpoint, tmp_path):
    cfg = recipe(report_to="tensorboard")
    tok = load_tokenizer(str(tiny_checkpoint))
    ds = Dataset.from_list(to_prompt_completion(ROWS, cfg.format, tok))
    train_sft(cfg, load_model(str(tiny_checkpoint)), tok, ds, None, tmp_path, False)
    events = tmp_path / TENSORBOARD_DIR
    assert list(events.glob("events.out.tfevents.*")), "the trainer's events are in RUN/tensorboard"
    assert not list((tmp_path / "checkpoints").rglob("events.out.tfevents.*"))
    summary = {"n": 2, "n_graded": 2, "accuracy": 0.5, "accuracy_by_grader": {"strict": {"accuracy": 0.25}}}
    log_summary(cfg.trainer, cfg.name, tmp_path, "tuned", summary, step=3)
    got = scalars(events)
    assert len(got["train/loss"]) == 3
    assert got["eval/tuned/accuracy"] == [0.5] and got["eval/tuned/accuracy_strict"] == [0.25]


def test_default_is_none_and_writes_nothing(tmp_path):
    cfg = recipe()
    assert report_to(cfg.trainer) == [] and report_to({"report_to": ["none"]}) == []
    log_summary(cfg.trainer, cfg.name, tmp_path, "tuned", {"accuracy": 1.0}, step=0)
    assert not (tmp_path / TENSORBOARD_DIR).exists()


def test_unknown_or_missing_tracker_is_one_line():
    with pytest.raises(UserError, match="trainer.report_to: unknown tracker 'tensorbored'"):
        check_report_to({"report_to": "tensorbored"})
    check_report_to({"report_to": ["tensorboard"]})
    from transformers.integrations import get_available_reporting_integrations

    missing = [n for n in ("wandb", "mlflow", "trackio") if n not in get_available_reporting_integrations()]
    for name in missing:
        with pytest.raises(UserError, match=f"trainer.report_to: '{name}' is not installed"):
            check_report_to({"report_to": name})
