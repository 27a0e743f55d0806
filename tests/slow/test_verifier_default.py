"""The verifier loop on the embedded default model, shrunk to under 2 minutes on a CPU: sample and grade solutions,
train the True/False verifier, evaluate it before and after training, select among each held-out problem's samples."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mathtune.cli import app

SMALL = ["--set", "data.train.size=8", "--set", "data.eval.size=6", "--set", "verifier.sampling.eval_samples=4",
         "--set", "verifier.sampling.max_new_tokens=48", "--set", "trainer.max_steps=2", "--set", "trainer.save_steps=2"]


@pytest.mark.slow
def test_verifier_loop_on_the_default_model(tmp_path):
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["verifier", "train", "tiny/verifier_default", "--output", str(run), *SMALL])
    assert result.exit_code == 0, result.output
    balance = json.loads((run / "balance.json").read_text())
    # 4 samples per training problem (problems shared with the held-out set are dropped), 4 per held-out problem
    assert 0 < balance["train"]["rows"] <= 32 and balance["train"]["rows"] % 4 == 0 and balance["eval"]["rows"] == 24
    assert 0 < balance["train"]["correct"] < balance["train"]["rows"], "both labels are needed"
    for extra in (["--untrained"], []):
        result = CliRunner().invoke(app, ["verifier", "eval", str(run), *extra])
        assert result.exit_code == 0, result.output
    before = json.loads((run / "eval" / "heldout-untrained" / "metrics.json").read_text())
    after = json.loads((run / "eval" / "heldout" / "metrics.json").read_text())
    assert before["n"] == after["n"] == 24 and 0 <= after["auroc"] <= 1
    train_questions = {json.loads(line)["question"] for line in (run / "train.jsonl").read_text().splitlines()}
    held_questions = {json.loads(line)["question"] for line in (run / "eval.jsonl").read_text().splitlines()}
    assert not train_questions & held_questions
    assert before["mean_score"] != after["mean_score"], "the adapter must change the scores"
    assert [r["n"] for r in after["selection"]] == [1, 2, 4]
    assert (run / "eval" / "heldout" / "reliability.png").is_file()
