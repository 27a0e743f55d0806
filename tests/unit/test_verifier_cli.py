"""`mathtune verifier data|train|eval` and `mathtune eval --verifier` end to end on a tiny random Llama, with
labelled rows from the NYU-DL-Teach-Maths-Comp-schema fixture (file and hub-layout folder)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mathtune.cli import app

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "verifier" / "nyu_maths_comp"


def write_recipe(tmp_path: Path, model: Path, **verifier) -> Path:
    recipe = {
        "name": "tiny-verifier",
        "model": str(model),
        "data": {"eval": {"source": "reasoning_gym", "task": "chain_sum", "size": 2, "seed": 9}},
        "lora": {"r": 4, "alpha": 8},
        "trainer": {"max_steps": 2, "per_device_train_batch_size": 2, "save_steps": 100, "disable_tqdm": True},
        "verifier": {
            "train": {"path": str(FIXTURE / "data" / "train-00000-of-00001.parquet")},
            "eval": {"path": str(FIXTURE), "split": "train[-3:]"},  # the hub layout, read through `datasets`
            "max_length": 256,
            **verifier,
        },
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def invoke(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def trained(tiny_checkpoint, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vcli")
    recipe = write_recipe(tmp, tiny_checkpoint, head="seq_cls")
    invoke("verifier", "data", str(recipe), "--output", str(tmp / "data"))
    invoke("verifier", "train", str(recipe), "--data", str(tmp / "data"), "--output", str(tmp / "run"))
    return tmp


def test_data_drops_held_out_questions_and_reports_balance(trained):
    balance = json.loads((trained / "data" / "balance.json").read_text())
    # the last 3 fixture rows are held out; the 4 training rows that share their questions are dropped
    assert balance["dropped_shared_questions"] == 4
    assert balance["train"]["rows"] == 4 and balance["train"]["correct"] == 2
    assert balance["eval"]["rows"] == 3 and balance["eval"]["correct"] == 1
    held = {json.loads(line)["question"] for line in (trained / "data" / "eval.jsonl").read_text().splitlines()}
    train = {json.loads(line)["question"] for line in (trained / "data" / "train.jsonl").read_text().splitlines()}
    assert held and not held & train


def test_train_writes_a_reloadable_run(trained):
    run = trained / "run"
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
    info = json.loads((run / "verifier.json").read_text())
    assert info["head"] == "seq_cls" and info["train_rows"] == 4


def test_eval_untrained_and_comparison(trained):
    run = trained / "run"
    out = invoke("verifier", "eval", str(run), "--untrained").output
    assert "run-untrained: AUROC" in out
    assert json.loads((run / "eval" / "heldout-untrained" / "metrics.json").read_text())["n"] == 3
    out = invoke("verifier", "eval", str(run), str(run), "--data", str(FIXTURE / "data" / "train-00000-of-00001.parquet"),
                 "--output", str(trained / "cmp")).output
    assert "| AUROC |" in out and (trained / "cmp" / "comparison-train-00000-of-00001.md").is_file()
    assert "held-out questions are also in" in out  # the fixture's rows include the verifier's training rows


def test_empty_class_in_held_out_rows_is_refused(trained, tmp_path):
    only_right = tmp_path / "right.jsonl"
    only_right.write_text(json.dumps({"question": "q", "solution": "s", "is_correct": True}) + "\n")
    result = CliRunner().invoke(app, ["verifier", "eval", str(trained / "run"), "--data", str(only_right)])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: verifier eval: right: no incorrect (False) rows among 1; a verifier needs both labels (sample more "
        "solutions, raise the temperature, or pick a task the generator solves sometimes)")


def test_eval_with_verifier_reranks_samples(trained, tiny_checkpoint, tmp_path):
    bench = tmp_path / "bench.jsonl"
    bench.write_text("".join(json.dumps({"question": f"{a} + 1 =", "answer": str(a + 1)}) + "\n" for a in range(3)))
    out = invoke("eval", "--model", str(tiny_checkpoint), "--bench", str(bench), "--samples", "4", "--temperature",
                 "1.0", "--max-new-tokens", "6", "--template", "instruction", "--verifier", str(trained / "run"),
                 "--output", str(tmp_path / "ev")).output
    table = json.loads((tmp_path / "ev" / "selection.json").read_text())
    assert [r["n"] for r in table] == [1, 2, 4] and table[0]["problems"] == 3
    assert "best-of-N (verifier)" in out and (tmp_path / "ev" / "selection.png").is_file()
    scores = (tmp_path / "ev" / "verifier_scores.jsonl").read_text().splitlines()
    assert len(scores) == 12


def test_eval_with_verifier_needs_several_samples(trained, tiny_checkpoint, tmp_path):
    result = CliRunner().invoke(app, ["eval", "--model", str(tiny_checkpoint), "--bench", "chain_sum", "--limit", "2",
                                      "--verifier", str(trained / "run"), "--output", str(tmp_path / "x")])
    assert result.exit_code == 2 and "needs --samples 2 or more and --temperature above 0" in result.output
