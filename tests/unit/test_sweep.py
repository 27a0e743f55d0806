"""Sweeps with a fake job runner: grid expansion, one command per point, resume, failures, table, CSV and plot."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mathtune.errors import UserError
from mathtune.sweep import grid_points, metric_value, parse_grid, run_sweep


class FakeRunner:
    """Pretends to be `mathtune run`: writes a finished run folder whose accuracy depends on the overrides."""

    def __init__(self, fail: set[str] = frozenset()):
        self.calls: list[list[str]] = []
        self.fail = set(fail)

    def __call__(self, cmd: list[str], log_file: Path) -> int:
        self.calls.append(cmd)
        out = Path(cmd[cmd.index("--output") + 1])
        sets = dict(cmd[i + 1].split("=", 1) for i, c in enumerate(cmd) if c == "--set")
        out.mkdir(parents=True, exist_ok=True)
        (out / "run.json").write_text("{}")
        if out.name in self.fail:
            return 1  # killed half-way: run.json but no metrics.json
        acc = int(sets["lora.r"]) / 100 + float(sets["trainer.learning_rate"]) * 100
        (out / "metrics.json").write_text(json.dumps({"results": {
            "baseline": {"accuracy": 0.1},
            "tuned": {"accuracy": acc, "accuracy_low": acc - 0.05, "accuracy_high": acc + 0.05, "truncation_rate": 0.0},
        }, "train_loss": 1.625, "seconds": {"train": 12.5}}))
        (out / "train_log.json").write_text(json.dumps({"log_history": [{"loss": 2.0}, {"loss": 1.25}]}))
        return 0


GRID = ["lora.r=8,16", "trainer.learning_rate=1e-4,2e-4"]


def test_parse_grid_and_points(tmp_path):
    grid = parse_grid(GRID)
    assert grid == [("lora.r", ["8", "16"]), ("trainer.learning_rate", ["1e-4", "2e-4"])]
    points = grid_points(grid, tmp_path)
    assert [p.name for p in points] == ["00-r=8-learning_rate=1e-4", "01-r=8-learning_rate=2e-4",
                                        "02-r=16-learning_rate=1e-4", "03-r=16-learning_rate=2e-4"]
    assert points[3].overrides == {"lora.r": "16", "trainer.learning_rate": "2e-4"}
    for bad, msg in [(["lora.r"], "expected key=v1,v2"), (["lora.r=8", "lora.r=16"], "given twice"), ([], "no --grid")]:
        with pytest.raises(UserError, match=msg):
            parse_grid(bad)


def test_sweep_runs_each_point_once_and_resumes(tmp_path):
    grid = parse_grid(GRID)
    runner = FakeRunner(fail={"02-r=16-learning_rate=1e-4"})
    metrics = ["accuracy", "baseline.accuracy", "train_loss", "final_loss", "train_seconds"]
    table, status = run_sweep("r.yaml", ["trainer.max_steps=3"], grid, tmp_path, metrics, runner)
    assert len(runner.calls) == 4
    first = runner.calls[0]
    assert first[1:4] == ["-m", "mathtune", "run"] and first[4] == "r.yaml"
    assert first[first.index("--set") + 1] == "trainer.max_steps=3" and "--resume" not in first
    assert status["02-r=16-learning_rate=1e-4"].startswith("failed (exit 1")
    assert "| 01-r=8-learning_rate=2e-4 | 8 | 2e-4 | done | 10.0% [5.0%, 15.0%] | 10.0% | 1.625 | 1.25 | 12.5 |" in table
    # rerun: finished points are skipped, the killed one continues with --resume
    runner2 = FakeRunner()
    table, status = run_sweep("r.yaml", ["trainer.max_steps=3"], grid, tmp_path, metrics, runner2)
    assert len(runner2.calls) == 1 and "--resume" in runner2.calls[0]
    assert runner2.calls[0][runner2.calls[0].index("--output") + 1].endswith("02-r=16-learning_rate=1e-4")
    assert set(status.values()) == {"done", "done (kept)"}
    rows = list(csv.DictReader((tmp_path / "sweep.csv").open()))
    assert [float(r["accuracy"]) for r in rows] == pytest.approx([0.09, 0.1, 0.17, 0.18])
    assert rows[0]["train_loss"] == "1.625" and rows[0]["final_loss"] == "1.25" and rows[0]["train_seconds"] == "12.5"
    assert (tmp_path / "sweep.md").read_text().count("\n") == 6 and (tmp_path / "sweep.png").stat().st_size > 1000
    assert json.loads((tmp_path / "sweep.json").read_text())["grid"][0] == ["lora.r", ["8", "16"]]


def test_metric_lookup(tmp_path):
    FakeRunner()(["x", "--set", "lora.r=8", "--set", "trainer.learning_rate=0", "--output", str(tmp_path)], tmp_path)
    assert metric_value(tmp_path, "accuracy") == 0.08 and metric_value(tmp_path, "tuned.accuracy") == 0.08
    assert metric_value(tmp_path, "baseline.accuracy") == 0.1 and metric_value(tmp_path, "nope") is None


def mathtune(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mathtune", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={"PATH": "/usr/bin:/bin", "MATHTUNE_HOME": str(cwd / "home"),
                                            "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
                                            # this checkout's code, whatever the venv's editable install points at
                                            "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")})


def test_cli_errors_before_any_job(tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("x")
    for args, expected in [
        (["--grid", "lora.rank=1,2"], "lora.rank: unknown key"),
        (["--grid", "lora.r=8,x"], "lora.r: "),
        (["--grid", "lora.r"], "--grid 'lora.r': expected key=v1,v2"),
        (["--grid", "lora.r=8,16", "--output", str(tmp_path / "other")], "is not a sweep"),
    ]:
        proc = mathtune("sweep", "--grid", "trainer.learning_rate=1e-4", *args, cwd=tmp_path)
        assert proc.returncode == 2 and expected in proc.stderr, (args, proc.stderr[-800:])
    assert not (tmp_path / "runs").exists()
