"""The command line: the whole loop on a tiny model, and every bad input as one line with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GSM8K_FIXTURE = ROOT / "tests/fixtures/hub/gsm8k"


def mathtune(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mathtune", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={"PATH": "/usr/bin:/bin", "MATHTUNE_HOME": str(cwd / "home"),
                                            "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
                                            # this checkout's code, whatever the venv's editable install points at
                                            "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")})


def tiny_recipe(tmp_path: Path, model: Path, **extra) -> Path:
    recipe = {
        "name": "tiny",
        "model": str(model),
        "data": {
            "train": {"source": "reasoning_gym", "task": "chain_sum", "size": 16, "seed": 1,
                      "config": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}},
            "eval": {"source": "reasoning_gym", "task": "chain_sum", "size": 6, "seed": 1000,
                     "config": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}},
        },
        "lora": {"r": 4, "alpha": 8},
        "trainer": {"max_steps": 3, "per_device_train_batch_size": 4, "save_steps": 2, "disable_tqdm": True},
        "eval": {"max_new_tokens": 8, "batch_size": 4},
        **extra,
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_run_writes_the_whole_run_folder(tmp_path, tiny_checkpoint):
    recipe = tiny_recipe(tmp_path, tiny_checkpoint)
    out = tmp_path / "run"
    proc = mathtune("run", str(recipe), "--output", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ["recipe.yaml", "run.json", "metrics.json", "report.md", "loss.png", "adapter/adapter_model.safetensors",
                 "baseline/samples.jsonl", "tuned/samples.jsonl", "tuned/summary.json"]:
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["results"]) == {"baseline", "tuned"}
    assert metrics["results"]["tuned"]["n"] == 6
    sample = json.loads((out / "tuned/samples.jsonl").read_text().splitlines()[0])
    assert {"prompt", "completion", "extracted", "gold", "correct", "rule", "num_tokens", "diagnostics"} <= set(sample)
    report = (out / "report.md").read_text()
    assert "| accuracy |" in report and "McNemar" in report
    # a finished run is refused without --resume, and --resume on it redoes nothing and keeps the numbers
    again = mathtune("run", str(recipe), "--output", str(out), cwd=tmp_path)
    assert again.returncode == 2 and "already holds a run" in again.stderr
    resumed = mathtune("run", "--output", str(out), "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((out / "metrics.json").read_text())["results"] == metrics["results"]


def test_eval_on_gsm8k_fixture(tmp_path, tiny_checkpoint):
    out = tmp_path / "ev"
    proc = mathtune("eval", "--model", str(tiny_checkpoint), "--bench", "gsm8k", "--path", str(GSM8K_FIXTURE),
                    "--limit", "3", "--max-new-tokens", "4", "--output", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 3 and (out / "report.md").is_file()


@pytest.mark.parametrize(
    "args, expected",
    [
        (["run", "missing.yaml"], "missing.yaml: recipe file not found"),
        (["run", "--set", "lora.rank=3"], "lora.rank: unknown key"),
        (["run", "--set", "lora.r=x"], "lora.r: "),
        (["run", "--set", "data.train.source=gsm8kk"], "unknown data source 'gsm8kk'"),
        (["run", "--set", "model=./no/such/model"], "model: folder './no/such/model' does not exist"),
        (["run", "--output", "taken", "--set", "model=./no/such/model"], "not a mathtune run"),
        (["eval", "--bench", "nope.jsonl"], "--bench nope.jsonl: file not found"),
        (["eval", "--bench", "gsm8k", "--path", "bad.jsonl", "--model", "./no/such/model"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, args, expected):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("user data")
    proc = mathtune(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and expected in lines[-1]
    assert "Traceback" not in proc.stderr
    assert (tmp_path / "taken" / "keep.txt").read_text() == "user data"


def test_missing_field_and_empty_data(tmp_path, tiny_checkpoint):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"question": "1+1?", "answer": "2"}) + "\n" + json.dumps({"question": "2+2?"}) + "\n")
    recipe = tiny_recipe(tmp_path, tiny_checkpoint, baseline=False)
    proc = mathtune("run", str(recipe), "--set", f"data.eval={{source: file, path: {rows}}}", cwd=tmp_path)
    assert proc.returncode == 2 and "row 2" in proc.stderr and "answer" in proc.stderr, proc.stderr[-1000:]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    proc = mathtune("run", str(recipe), "--set", f"data.eval={{source: file, path: {empty}}}", cwd=tmp_path)
    assert proc.returncode == 2 and "data.eval: no rows" in proc.stderr, proc.stderr[-1000:]
    proc = mathtune("run", str(recipe), "--set", "data.train.size=0", cwd=tmp_path)
    assert proc.returncode == 2 and "data.train" in proc.stderr, proc.stderr[-1000:]


def test_debug_shows_traceback(tmp_path):
    proc = mathtune("run", "--set", "lora.rank=3", "--debug", cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" in proc.stderr
