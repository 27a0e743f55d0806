"""Run folders: atomic writes, refusing to overwrite a run, resume."""

from __future__ import annotations

import pytest

from mathtune.errors import UserError
from mathtune.runs import atomic_write_json, prepare_run_dir, read_json, write_run_info


def test_atomic_write_leaves_no_temp_files(tmp_path):
    atomic_write_json(tmp_path / "m.json", {"a": 1})
    atomic_write_json(tmp_path / "m.json", {"a": 2})
    assert read_json(tmp_path / "m.json") == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_run_dir_refuses_existing_run_unless_resume(tmp_path):
    run = prepare_run_dir(tmp_path / "r", resume=False)
    write_run_info(run, "name: x\n", seed=1, command="mathtune run")
    assert read_json(run / "run.json")["seed"] == 1
    with pytest.raises(UserError, match="already holds a run; pass --resume"):
        prepare_run_dir(run, resume=False)
    assert prepare_run_dir(run, resume=True) == run


def test_run_dir_refuses_foreign_folder_and_empty_resume(tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not a mathtune run"):
        prepare_run_dir(tmp_path / "other", resume=False)
    with pytest.raises(UserError, match="holds no run to resume"):
        prepare_run_dir(tmp_path / "empty", resume=True)


RECIPE = {"kind": "sft", "name": "x", "model": "m", "seed": 1, "data": {"train": {"source": "s", "size": 4},
          "eval": {"source": "s", "size": 2}}, "trainer": {"learning_rate": 1e-4}, "eval": {"max_new_tokens": 8}}


def changed(recipe: dict, key: str, value) -> dict:
    import copy

    out = copy.deepcopy(recipe)
    node = out
    *path, last = key.split(".")
    for part in path:
        node = node[part]
    node[last] = value
    return out


def test_resume_refuses_a_change_under_a_started_stage(tmp_path):
    from mathtune.runs import check_resume, record_stage

    run = prepare_run_dir(tmp_path / "r", resume=False)
    write_run_info(run, "name: x\n", seed=1, command="mathtune run")
    record_stage(run, "baseline", RECIPE)
    # the baseline was generated with 8 new tokens: 64 would make the folder lie about it
    with pytest.raises(UserError, match=r"the recipe changed eval.max_new_tokens, which the started stage\(s\) "
                                        r"baseline depended on") as err:
        check_resume(run, changed(RECIPE, "eval.max_new_tokens", 64))
    assert "\n" not in str(err.value)
    # training has not started: its keys may change; so may the name, which no stage reads
    check_resume(run, changed(RECIPE, "trainer.learning_rate", 2e-4))
    check_resume(run, changed(RECIPE, "name", "y"))
    record_stage(run, "train", RECIPE)
    with pytest.raises(UserError, match="trainer.learning_rate, which the started stage.* train"):
        check_resume(run, changed(RECIPE, "trainer.learning_rate", 2e-4))
    with pytest.raises(UserError, match="data.train.size"):  # the baseline does not read it, training does
        check_resume(run, changed(RECIPE, "data.train.size", 8))
    with pytest.raises(UserError, match="trainer.max_steps"):  # a key added under a started stage counts too
        check_resume(run, changed(RECIPE, "trainer.max_steps", 3))
    check_resume(run, RECIPE)


def test_timings_add_up_across_attempts(tmp_path):
    import os
    import time

    from mathtune.runs import RUN_MARKER, all_stage_seconds, stage_attempt, stage_seconds

    run = prepare_run_dir(tmp_path / "r", resume=False)
    write_run_info(run, "name: x\n", seed=1, command="mathtune run")
    assert stage_seconds(run, "train") is None
    with pytest.raises(KeyboardInterrupt):  # a killed attempt: its time counts until its last output write
        with stage_attempt(run, "train", RECIPE, outputs=["checkpoints"]):
            (run / "checkpoints").mkdir()
            (run / "checkpoints" / "step-1").write_text("kept work")
            raise KeyboardInterrupt
    info = read_json(run / RUN_MARKER)
    started = info["stages"]["train"]["attempts"][0]["started"]
    os.utime(run / "checkpoints" / "step-1", (started + 20.0, started + 20.0))
    with stage_attempt(run, "train", RECIPE, outputs=["checkpoints"]):
        time.sleep(0.05)
    total = stage_seconds(run, "train")
    assert 20.05 <= total < 21.0
    assert all_stage_seconds(run) == {"train": total}
    assert len(read_json(run / RUN_MARKER)["stages"]["train"]["attempts"]) == 2


def test_mean_train_loss_spans_the_whole_log():
    from mathtune.runs import mean_train_loss

    # steps 1-2 before a resume, 3-4 after; the trainer's own `train_loss` (last entry) covers only the last two
    log = [{"loss": 4.0, "step": 1}, {"loss": 2.0, "step": 2}, {"loss": 1.0, "step": 3}, {"eval_loss": 9.0},
           {"loss": 1.0, "step": 4}, {"train_loss": 0.5, "step": 4}]
    assert mean_train_loss(log) == 2.0 and mean_train_loss([]) is None


@pytest.mark.parametrize("existed", [False, True])
def test_a_failed_start_leaves_nothing_behind(tmp_path, existed):
    from mathtune.runs import run_folder

    path = tmp_path / "runs" / "r"
    if existed:
        path.mkdir(parents=True)
    with pytest.raises(UserError):
        with run_folder(path, resume=False):
            write_run_info(path, "name: x\n", seed=1, command="mathtune run")
            (path / "checkpoints").mkdir()  # a folder without output in it is nothing worth resuming
            raise UserError("data.eval: no rows")
    if existed:  # the folder was there (empty) before: it stays, empty
        assert path.is_dir() and list(path.iterdir()) == []
    else:  # the folder and the `runs/` this start made are gone
        assert not (tmp_path / "runs").exists()
    with run_folder(path, resume=False):  # the fixed command is not refused
        write_run_info(path, "name: x\n", seed=1, command="mathtune run")


def test_a_failed_start_keeps_what_is_worth_resuming(tmp_path):
    from mathtune.runs import run_folder

    (tmp_path / "other.txt").write_text("someone else's")
    path = tmp_path / "r"
    with pytest.raises(KeyboardInterrupt):
        with run_folder(path, resume=False):
            write_run_info(path, "name: x\n", seed=1, command="mathtune run")
            (path / "baseline").mkdir()
            (path / "baseline" / "samples.jsonl").write_text('{"index": 0}\n')
            raise KeyboardInterrupt
    assert (path / "baseline" / "samples.jsonl").is_file() and (path / "run.json").is_file()
    assert (tmp_path / "other.txt").read_text() == "someone else's"


def test_publish_dir_replaces_a_folder_in_one_step(tmp_path):
    from mathtune.runs import staging_dir

    final = tmp_path / "adapter"
    for version in ("1", "2"):
        with staging_dir(final) as tmp:
            (tmp / "weights").write_text(version)
    assert (final / "weights").read_text() == "2" and [p.name for p in tmp_path.iterdir()] == ["adapter"]
    with pytest.raises(RuntimeError):
        with staging_dir(final) as tmp:
            (tmp / "weights").write_text("half")
            raise RuntimeError("killed mid-save")
    assert (final / "weights").read_text() == "2" and [p.name for p in tmp_path.iterdir()] == ["adapter"]


def test_read_samples_drops_a_torn_last_line(tmp_path):
    from mathtune.runs import read_samples

    path = tmp_path / "samples.jsonl"
    path.write_text('{"index": 0}\n\n{"index": 1}\n{"index": 2, "compl')
    assert read_samples(path) == [{"index": 0}, {"index": 1}] and read_samples(tmp_path / "none.jsonl") == []


def test_a_run_saved_before_stage_records_resumes_with_its_saved_recipe(tmp_path):
    import yaml

    from mathtune.config import load_recipe
    from mathtune.runs import check_resume

    run = prepare_run_dir(tmp_path / "r", resume=False)
    old = load_recipe(None).model_dump(mode="json")
    del old["kind"]
    old.update(grpo={"rewards": [{"name": "accuracy"}]}, verifier={"head": "lm"})  # what every run folder saved
    write_run_info(run, yaml.safe_dump(old), seed=1, command="mathtune run")
    cfg = load_recipe(str(run / "recipe.yaml"), kind="sft", saved=True)
    check_resume(run, cfg)  # the other stages' blocks are no change
    with pytest.raises(UserError, match="the recipe changed eval.max_new_tokens"):
        check_resume(run, load_recipe(str(run / "recipe.yaml"), ["eval.max_new_tokens=7"], kind="sft", saved=True))
