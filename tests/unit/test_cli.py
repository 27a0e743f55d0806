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
                 "curation.json",
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
    saved = (out / "recipe.yaml").read_text()
    # a resumed run refuses a recipe changed under a finished stage, and changes nothing in the folder
    changed = mathtune("run", str(recipe), "--set", "eval.max_new_tokens=64", "--output", str(out), "--resume",
                       cwd=tmp_path)
    assert changed.returncode == 2 and "Traceback" not in changed.stderr, changed.stderr[-2000:]
    assert "the recipe changed eval.max_new_tokens" in changed.stderr.strip().splitlines()[-1]
    assert "baseline" in changed.stderr and (out / "recipe.yaml").read_text() == saved
    resumed = mathtune("run", "--output", str(out), "--resume", "--set", "name=renamed", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]  # no stage reads the name
    again_metrics = json.loads((out / "metrics.json").read_text())
    assert again_metrics["results"] == metrics["results"]
    # timings are those of the stages' own attempts, not of the resumed process (which redid nothing)
    assert again_metrics["seconds"] == metrics["seconds"] and metrics["seconds"]["train"] > 0
    assert set(metrics["seconds"]) == {"baseline", "train", "tuned"}
    assert metrics["train_loss"] is not None


def test_eval_on_gsm8k_fixture(tmp_path, tiny_checkpoint):
    out = tmp_path / "ev"
    proc = mathtune("eval", "--model", str(tiny_checkpoint), "--bench", "gsm8k", "--path", str(GSM8K_FIXTURE),
                    "--limit", "3", "--set", "eval.max_new_tokens=4", "--batch-size", "2", "--output", str(out),
                    cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 3 and (out / "report.md").is_file()
    saved = yaml.safe_load((out / "recipe.yaml").read_text())
    # any eval key by --set, the shortcuts as before, the rest the schema's defaults (defined once, in EvalConfig)
    assert saved["kind"] == "eval" and saved["eval"]["max_new_tokens"] == 4 and saved["eval"]["batch_size"] == 2
    assert saved["eval"]["temperature"] == 0.0 and saved["format"]["template"] == "chat"
    assert max(json.loads(line)["num_tokens"] for line in (out / "samples.jsonl").read_text().splitlines()) <= 4


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
        # the whole recipe, trainer block included, is checked at load: before any model, data or run folder
        (["run", "--set", "trainer.learning_rat=1e-4", "-o", "out"],
         "default recipe: trainer.learning_rat: not an argument of trl.SFTConfig (did you mean 'learning_rate'?)"),
        (["run", "--set", "trainer.per_device_train_batch_size=0"], "trainer.per_device_train_batch_size: expected a value >= 1, got 0"),
        (["run", "--set", "trainer.learning_rate=-1e-4"], "trainer.learning_rate: expected a value >= 0"),
        (["run", "--set", "trainer.max_steps=many"], "trainer.max_steps: trl.SFTConfig expects an integer, got 'many'"),
        (["run", "--set", "trainer.lr_scheduler_type=cosinus"], "trainer: trl.SFTConfig rejects these settings: cosinus"),
        (["train", "tiny/sft_gsm8k", "--set", "trainer.learning_rat=1e-4", "-o", "out"], "tiny/sft_gsm8k: trainer.learning_rat"),
        (["sweep", "--grid", "trainer.learning_rat=1e-4,2e-4", "-o", "out"], "trainer.learning_rat: not an argument of trl.SFTConfig"),
        (["grpo", "--set", "trainer.num_generation=4", "-o", "out"], "trainer.num_generation: not an argument of trl.GRPOConfig"),
        (["grpo", "--set", "trainer.per_device_train_batch_size=0", "-o", "out"], "trainer.per_device_train_batch_size"),
        (["verifier", "train", "--set", "trainer.learning_rat=1e-4", "-o", "out"], "trainer.learning_rat: not an argument"),
        (["verifier", "data", "--set", "trainer.learning_rate=-1", "-o", "out"], "trainer.learning_rate: expected a value >= 0"),
        (["grpo", "tiny/sft_gsm8k", "-o", "out"], "tiny/sft_gsm8k: kind: this is a 'sft' recipe; this command runs 'grpo'"),
        (["run", "--set", "kind=rl"], "kind: unknown recipe kind 'rl'"),
        # tracebacks before: bad YAML in --set, a folder, a binary or non-UTF-8 file as recipe or data
        (["run", "--set", "lora.r=[8"], "--set 'lora.r=[8': the value is not valid YAML"),
        (["run", "taken"], "taken: is a folder; expected a recipe YAML file"),
        (["run", "latin1.yaml"], "latin1.yaml: not a UTF-8 text file (byte 9)"),
        (["run", "binary.yaml"], "binary.yaml: a binary file; expected a recipe in YAML"),
        (["eval", "--bench", "latin1.jsonl", "--model", "TINY", "-o", "out"], "latin1.jsonl: not a UTF-8 text file"),
        (["eval", "--bench", "empty.jsonl", "--model", "TINY", "-o", "out"], "empty.jsonl: empty file"),
        (["eval", "--bench", "gsm9k"], "--bench gsm9k: not a named benchmark (gsm8k, "),
        (["eval", "--bench", "gsm9k"], "Did you mean 'gsm8k'"),
        (["eval", "--bench", "gsm8k", "--set", "eval.max_new_token=4"], "eval.max_new_token: unknown key. Did you mean"),
        (["eval", "--bench", "gsm8k", "--max-new-tokens", "0"], "eval.max_new_tokens: "),
        (["eval", "--bench", "gsm8k", "--path", str(GSM8K_FIXTURE), "--model", "notok"],
         "model notok: no tokenizer could be loaded"),
        (["data", "default", "--set", "data.train={source: file, path: latin1.jsonl}", "--tokenizer", "approx"],
         "latin1.jsonl: not a UTF-8"),
        # users' files are not overwritten without --force
        (["data", "tiny/sft_gsm8k", "--write", "mine.jsonl"], "--write mine.jsonl: file exists; pass --force"),
        (["compare", "taken", "taken", "-o", "cmp"], "--output cmp: already holds compare.md; pass --force"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, args, expected, tiny_checkpoint):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("user data")
    (tmp_path / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    (tmp_path / "latin1.jsonl").write_bytes('{"q": "caf\xe9"}\n'.encode("latin-1"))
    (tmp_path / "binary.yaml").write_bytes(b"\x00\x01\x02name")
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "mine.jsonl").write_text("my rows\n")
    (tmp_path / "cmp").mkdir()
    (tmp_path / "cmp" / "compare.md").write_text("my comparison\n")
    notok = tmp_path / "notok"  # a model folder saved without its tokenizer
    notok.mkdir()
    for f in tiny_checkpoint.iterdir():
        if f.name.startswith(("config", "model", "generation")):
            (notok / f.name).write_bytes(f.read_bytes())
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    proc = mathtune(*(str(tiny_checkpoint) if a == "TINY" else a for a in args), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and expected in lines[-1], lines[-1]
    assert "Traceback" not in proc.stderr
    # nothing of the user's changed, nothing left behind (no run folder, no runs/)
    assert (tmp_path / "taken" / "keep.txt").read_text() == "user data"
    assert (tmp_path / "mine.jsonl").read_text() == "my rows\n"
    assert (tmp_path / "cmp" / "compare.md").read_text() == "my comparison\n"
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if not p.is_relative_to(tmp_path / "home"))
    assert after == [p for p in before if not p.is_relative_to("home")]


def test_missing_field_and_empty_data(tmp_path, tiny_checkpoint):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"question": "1+1?", "answer": "2"}) + "\n" + json.dumps({"question": "2+2?"}) + "\n")
    recipe = tiny_recipe(tmp_path, tiny_checkpoint, baseline=False)
    proc = mathtune("run", str(recipe), "--set", f"data.eval={{source: file, path: {rows}}}", cwd=tmp_path)
    assert proc.returncode == 2 and "row 2" in proc.stderr and "answer" in proc.stderr, proc.stderr[-1000:]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    proc = mathtune("run", str(recipe), "--set", f"data.eval={{source: file, path: {empty}}}", cwd=tmp_path)
    assert proc.returncode == 2 and f"data.eval: {empty}: empty file" in proc.stderr, proc.stderr[-1000:]
    proc = mathtune("run", str(recipe), "--set", "data.train.size=0", cwd=tmp_path)
    assert proc.returncode == 2 and "data.train" in proc.stderr, proc.stderr[-1000:]
    assert not (tmp_path / "runs").exists()  # these failed after the run folder was made: it is gone again


def test_failed_start_leaves_no_run_folder_so_the_fixed_command_runs(tmp_path, tiny_checkpoint):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("")
    recipe = tiny_recipe(tmp_path, tiny_checkpoint, baseline=False)
    out = tmp_path / "run"
    proc = mathtune("run", str(recipe), "--set", f"data.eval={{source: file, path: {rows}}}", "-o", str(out),
                    cwd=tmp_path)
    assert proc.returncode == 2 and "empty file" in proc.stderr and not out.exists(), proc.stderr[-1000:]
    rows.write_text(json.dumps({"question": "1 + 1 =", "answer": "2"}) + "\n")
    proc = mathtune("run", str(recipe), "--set", f"data.eval={{source: file, path: {rows}}}", "-o", str(out),
                    "--set", "trainer.max_steps=1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "tuned" / "summary.json").is_file()


def test_debug_shows_traceback(tmp_path):
    proc = mathtune("run", "--set", "lora.rank=3", "--debug", cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" in proc.stderr
