"""Under `accelerate launch` rank 0 alone writes the run folder: on any other rank every write of runs.py (files,
JSON, plots, the adapter folder, run.json records, the run folder itself) leaves nothing behind."""

from __future__ import annotations

import json

import pytest

from mathtune import distributed
from mathtune.config import Recipe
from mathtune.runs import (
    atomic_write_json, atomic_write_text, prepare_run_dir, record_stage, save_adapter, save_png, stage_attempt,
    update_run_info, write_run_info,
)

RECIPE = Recipe.model_validate({"data": {"eval": {"source": "reasoning_gym", "task": "chain_sum", "size": 2, "seed": 9}}})


def write_everything(run, tiny_checkpoint) -> None:
    """What a training command writes into its run folder, through runs.py."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mathtune.models import load_model, load_tokenizer

    prepare_run_dir(run, resume=False)
    write_run_info(run, "name: x\n", 42, "mathtune train x")
    record_stage(run, "train", RECIPE)
    with stage_attempt(run, "train", RECIPE, outputs=["adapter"]):
        atomic_write_json(run / "train_log.json", {"loss": 1.0})
        atomic_write_text(run / "report.md", "# report\n")
        save_png(plt.figure(), run / "loss.png")
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(load_model(str(tiny_checkpoint)), LoraConfig(r=2, target_modules=["q_proj"]))
        save_adapter(model, load_tokenizer(str(tiny_checkpoint)), run)
    update_run_info(run, precision={"train": "fp32"})


def test_rank_1_writes_nothing(tmp_path, tiny_checkpoint, monkeypatch):
    monkeypatch.setattr(distributed, "process_index", lambda: 1)
    assert not distributed.is_main_process()
    write_everything(tmp_path / "run", tiny_checkpoint)
    assert not (tmp_path / "run").exists(), "rank 1 made no run folder"
    (tmp_path / "run").mkdir()  # rank 0's folder, which rank 1 then updates
    write_everything(tmp_path / "run", tiny_checkpoint)
    assert list((tmp_path / "run").iterdir()) == []


def test_rank_0_writes_the_run(tmp_path, tiny_checkpoint):
    assert distributed.is_main_process() and not distributed.launched()  # a plain process is rank 0
    write_everything(tmp_path / "run", tiny_checkpoint)
    names = {p.name for p in (tmp_path / "run").iterdir()}
    assert names == {"run.json", "recipe.yaml", "train_log.json", "report.md", "loss.png", "adapter"}
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["precision"] == {"train": "fp32"} and info["stages"]["train"]["attempts"][0]["seconds"] is not None
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.parametrize("rank", [0, 1])
def test_every_rank_checks_the_folder_before_rank_0_creates_it(tmp_path, monkeypatch, rank):
    from mathtune.errors import UserError

    monkeypatch.setattr(distributed, "process_index", lambda: rank)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="folder exists and is not a mathtune run"):
        prepare_run_dir(tmp_path / "taken", resume=False)
