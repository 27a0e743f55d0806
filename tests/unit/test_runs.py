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
