"""`mathtune eval --bench gsm8k` from the shipped copy, and its bad input: one line, exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def mathtune(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mathtune", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={"PATH": "/usr/bin:/bin", "MATHTUNE_HOME": str(cwd / "home"),
                                            "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"})


def test_eval_gsm8k_needs_no_path_and_no_hub(tmp_path, tiny_checkpoint):
    out = tmp_path / "ev"
    proc = mathtune("eval", "--model", str(tiny_checkpoint), "--bench", "gsm8k", "--limit", "2", "--max-new-tokens",
                    "4", "--template", "instruction", "--fewshot", "2", "--output", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [r["gold"] for r in records] == ["18", "3"]
    assert records[0]["prompt"].count("\nA:") == 3 and records[0]["prompt"].startswith("Q: There are 15 trees")


@pytest.mark.parametrize("args, expected", [
    (["--bench", "gsm8k", "--fewshot", "9"], "--fewshot 9: prompt set 'gsm8k-cot' has 8 exemplars"),
    (["--bench", "gsm8k", "--fewshot", "3", "--fewshot-set", "gsm8k-cto"], "Did you mean 'gsm8k-cot'"),
    (["--bench", "basic_arithmetic", "--fewshot", "2"], "no default exemplars"),
    (["--bench", "gsm8k", "--path", "nofields.jsonl"], "nofields.jsonl: row 1: missing key 'answer'"),
])
def test_bad_gsm8k_options_are_one_line_exit_2(tmp_path, tiny_checkpoint, args, expected):
    (tmp_path / "nofields.jsonl").write_text(json.dumps({"question": "1+1?", "solution": "2"}) + "\n")
    proc = mathtune("eval", "--model", str(tiny_checkpoint), *args, "--output", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and expected in lines[-1], lines
    assert "Traceback" not in proc.stderr
