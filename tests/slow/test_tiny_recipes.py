"""The seed recipes' tiny twins end to end on the embedded default: `mathtune run tiny/...` from the repo root."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """$MATHTUNE_HOME when set (the converted default is reused), else a fresh folder."""
    env = os.environ.get("MATHTUNE_HOME")
    return Path(env) if env else tmp_path_factory.mktemp("home")


def run_recipe(name: str, out: Path, home: Path) -> subprocess.CompletedProcess:
    # from the repository root: the tiny twins read fixture files by relative path
    return subprocess.run([sys.executable, "-m", "mathtune", "run", name, "--output", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900,
                          env={"PATH": "/usr/bin:/bin", "MATHTUNE_HOME": str(home), "HF_HUB_OFFLINE": "1"})


def first_prompt(folder: Path) -> str:
    return json.loads((folder / "samples.jsonl").read_text().splitlines()[0])["prompt"]


def test_tiny_sft_gsm8k(tmp_path, home):
    out = tmp_path / "run"
    proc = run_recipe("tiny/sft_gsm8k", out, home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["rows"]["train"] == 3
    assert {k: v["n"] for k, v in metrics["results"].items()} == {"baseline": 6, "tuned": 6}
    assert (out / "adapter" / "adapter_model.safetensors").is_file()  # adapters saved
    assert first_prompt(out / "tuned").startswith("### Instruction:\n")
    assert "decontaminate (13-gram): kept 3, dropped 0" in proc.stderr


def test_tiny_sft_mix(tmp_path, home):
    out = tmp_path / "run"
    proc = run_recipe("tiny/sft_mix", out, home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["rows"]["train"] == 12
    sizes = {k: v["n"] for k, v in metrics["results"].items()}
    assert sizes == {"baseline": 6, "baseline-gsm_hard": 5, "tuned": 6, "tuned-gsm_hard": 5}
    # GSM-Hard rows are the extra eval set's own questions: all dropped, their weight shared by the others
    assert "eval overlap (exact): kept 7, dropped 5" in proc.stderr
    assert "[2] gsm_hard: weight 0.1, no rows left" in proc.stderr
    report = (out / "report.md").read_text()
    assert "tuned-gsm_hard" in report and "gsm_hard: On the same 5 problems" in report


def test_tiny_sft_magpie_curated(tmp_path, home):
    out = tmp_path / "run"
    proc = run_recipe("tiny/sft_magpie_curated", out, home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["rows"]["train"] == 4 and metrics["rows"]["validation"] == 2
    history = json.loads((out / "train_log.json").read_text())["log_history"]
    assert any("eval_loss" in h for h in history)  # validation loss feeds early stopping
    for stage in ("baseline", "tuned"):
        assert "doubt_per_1k_tokens" in json.dumps(metrics["results"][stage]["diagnostics"])
    assert "filter equals field=input_quality value=excellent: kept 15, dropped 3" in proc.stderr
    assert "doubt markers per 1k tokens" in (out / "report.md").read_text()
