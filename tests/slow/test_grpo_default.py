"""`mathtune grpo` end to end on the embedded default recipe, shrunk to 2 small steps (about a minute on 2 cores)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SMALL = [
    "trainer.max_steps=2", "trainer.per_device_train_batch_size=8", "trainer.num_generations=4",
    "trainer.max_completion_length=32", "grpo.eval_every=0", "grpo.eval_limit=8", "eval.max_new_tokens=32",
    "data.train.size=50",
]


def test_grpo_default_recipe_runs(tmp_path):
    home = Path(os.environ.get("MATHTUNE_HOME") or tmp_path / "home")  # the converted default is reused when set
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "mathtune", "grpo", "--output", str(out)]
    for item in SMALL:
        cmd += ["--set", item]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={"PATH": "/usr/bin:/bin", "MATHTUNE_HOME": str(home), "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 2
    assert sorted(metrics["evals"]) == ["0", "2"]  # held-out evaluation before and after training
    assert all(e["n"] == 8 for e in metrics["evals"].values())
    for row in metrics["history"]:
        assert 0.0 <= row["rewards/accuracy/mean"] <= 1.0 and "signal_share" in row
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    report = (out / "report.md").read_text()
    assert "Held-out evaluation over training" in report and "accuracy" in report
    assert (out / "grpo.png").is_file()
    assert "held-out accuracy" in proc.stdout
