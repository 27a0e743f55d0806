"""The recurrent-depth tiny twin end to end on the embedded default, shrunk (a handful of steps, 6 problems)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SMALL = ["data.train.size=24", "data.eval.size=6", "eval.max_new_tokens=24", "eval.batch_size=6",
         "recurrent.sweep=[1, 2]", "trainer.save_steps=100"]


def test_recurrent_tiny_twin_runs(tmp_path):
    home = Path(os.environ.get("MATHTUNE_HOME") or tmp_path / "home")  # the converted default is reused when set
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "mathtune", "run", "tiny/recurrent_default", "--output", str(out)]
    for item in SMALL:
        cmd += ["--set", item]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                          env={"PATH": "/usr/bin:/bin", "MATHTUNE_HOME": str(home), "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert {k: v["n"] for k, v in metrics["results"].items()} == {"baseline": 6, "tuned": 6}
    assert [p["num_steps"] for p in metrics["sweep"]] == [1, 2]
    # the sweep's r=2 point is the tuned evaluation's depth: same model, same greedy decoding, same accuracy
    r2 = next(p for p in metrics["sweep"] if p["num_steps"] == 2)
    assert r2["accuracy"] == metrics["results"]["tuned"]["accuracy"]
    assert (out / "sweep" / "sweep.png").is_file() and "sweep/sweep.png" in (out / "report.md").read_text()
    config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"], "the adapter names the recurrent base it was trained on"
