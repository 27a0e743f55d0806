"""Per-grader scores in eval records and summaries, the report rows, and `mathtune regrade` on stored samples."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mathtune.eval.generate import Completion
from mathtune.eval.regrade import agreement, read_records, regrade_record, write_regrade
from mathtune.eval.report import results_table
from mathtune.eval.runner import score, summarize

ROOT = Path(__file__).resolve().parents[2]
GSM8K_FIXTURE = ROOT / "tests/fixtures/hub/gsm8k"
GOLD = "She makes 9 * 2 = <<9*2=18>>18 dollars.\n#### 18"
# (completion, mathtune, strict, flexible, math_verify): where the graders part ways on a GSM8K-style gold
COMPLETIONS = [
    ("9 * 2 = 18\n#### 18", True, True, True, True),
    ("The answer is 18.", True, False, True, True),
    ("The answer is 18. Check: 18 + 2 = 20.", True, False, False, False),
    ("#### 18.0", True, False, False, True),
    ("The answer is 17.", False, False, False, False),
]


def _records(tmp_path: Path) -> list[dict]:
    row = {"question": "q", "answer": GOLD}
    return [score(i, 0, {**row, "question": f"q{i}"}, "p", Completion(text, 5, False), "gsm8k")
            for i, (text, *_) in enumerate(COMPLETIONS)]


def _write(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_score_records_every_graders_verdict(tmp_path):
    records = _records(tmp_path)
    for rec, (_, mine, strict, flexible, mv) in zip(records, COMPLETIONS):
        assert rec["correct"] is mine
        assert rec["graders"] == {"strict": strict, "flexible": flexible, "math_verify": mv}
        assert rec["gold_raw"] == GOLD and rec["bench"] == "gsm8k"


def test_summary_and_report_put_the_graders_side_by_side(tmp_path):
    summary = summarize(_records(tmp_path), 1)
    by = summary["accuracy_by_grader"]
    assert list(by) == ["mathtune", "strict", "flexible", "math_verify"]
    assert [by[g]["accuracy"] for g in by] == [0.8, 0.2, 0.4, 0.6]
    assert by["mathtune"]["accuracy"] == summary["accuracy"]
    assert 0 < by["strict"]["accuracy_low"] < 0.2 < by["strict"]["accuracy_high"] < 1
    table = results_table({"baseline": summary, "tuned": summary})
    assert "| accuracy, lm-eval strict-match | 20.0% [" in table
    assert "| accuracy, math-verify | 60.0% [" in table


def test_old_records_without_graders_summarize_as_before(tmp_path):
    rec = {k: v for k, v in _records(tmp_path)[0].items() if k != "graders"}
    summary = summarize([rec], 1)
    assert list(summary["accuracy_by_grader"]) == ["mathtune"]
    assert "lm-eval" not in results_table({"m": summary})


def test_regrade_record_switches_the_verdict_and_keeps_the_rest(tmp_path):
    rec = _records(tmp_path)[1]  # "The answer is 18.": mathtune right, strict wrong
    strict = regrade_record(rec, "strict")
    assert (strict["correct"], strict["extracted"], strict["reason"]) == (False, "[invalid]", "mismatch")
    assert strict["graders"]["mathtune"] is True and strict["stored_correct"] is True
    assert regrade_record(rec, "mathtune")["correct"] is True
    # A record from before gold_raw was stored is regraded from its parsed gold.
    old = {k: v for k, v in rec.items() if k not in ("gold_raw", "bench")}
    assert regrade_record(old, "flexible")["correct"] is True


def test_regrade_record_recomputes_the_diagnostics(tmp_path):
    # a record scored under an older loop rule: the stored diagnostics say no loop, the text ends in one
    loop = "".join(f"They have {a}+7={a + 7} coins in their piggy bank.\n" for a in range(100, 108))
    rec = score(0, 0, {"question": "q", "answer": GOLD}, "p", Completion(loop, 256, True), "gsm8k")
    stale = {**rec, "diagnostics": {**rec["diagnostics"], "loop": False}}
    fresh = regrade_record(stale, "mathtune")
    assert rec["diagnostics"]["loop"] is True and fresh["diagnostics"] == rec["diagnostics"]
    assert "diagnostics" not in regrade_record({k: v for k, v in rec.items() if k != "diagnostics"}, "mathtune")


def test_agreement_counts_and_examples(tmp_path):
    regraded = [regrade_record(r, "mathtune") for r in _records(tmp_path)]
    agree = agreement(regraded, "mathtune", "strict", examples=2)
    assert agree["counts"] == {"both right": 1, "both wrong": 1, "only mathtune right": 3, "only strict right": 0,
                               "not judged": 0}
    assert agree["agreement"] == pytest.approx(2 / 5)
    assert len(agree["examples"]["only mathtune right"]) == 2 and agree["examples"]["only strict right"] == []


def test_write_regrade_on_fixture_samples(tmp_path):
    source = _write(tmp_path / "ev" / "samples.jsonl", _records(tmp_path))
    before = source.read_text()
    out = tmp_path / "re"
    result = write_regrade(source.parent, out, "flexible", "mathtune", None, 1, "mathtune regrade ev")
    assert source.read_text() == before  # the input is never written to
    regraded = read_records(out / "samples.jsonl")
    assert [r["correct"] for r in regraded] == [c[3] for c in COMPLETIONS]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["accuracy"] == pytest.approx(0.4) and summary["grader"] == "flexible"
    md = (out / "regrade.md").read_text()
    assert "| only mathtune right | 2 |" in md and "### only flexible right" in md
    assert result["agreement"]["counts"]["only mathtune right"] == 2


@pytest.mark.parametrize(
    "args, message",
    [
        ({"grader": "gpt4"}, "--grader: 'gpt4' is not one of"),
        ({"against": "x"}, "--against: 'x' is not one of"),
        ({"out": "same"}, "is the input's folder"),
        ({"out": "again"}, "already holds a samples.jsonl"),
    ],
)
def test_write_regrade_refuses_bad_input(tmp_path, args, message):
    from mathtune.errors import UserError

    source = _write(tmp_path / "ev" / "samples.jsonl", _records(tmp_path))
    out = {"same": source.parent, "again": source.parent / "again"}.get(args.get("out"), tmp_path / "o")
    if args.get("out") == "again":
        _write(out / "samples.jsonl", [])
    with pytest.raises(UserError, match=message):
        write_regrade(source, out, args.get("grader", "strict"), args.get("against", "stored"), None, 1, "c")


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mathtune", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={"PATH": "/usr/bin:/bin", "MATHTUNE_HOME": str(cwd / "home"),
                                            "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
                                            "PYTHONPATH": str(ROOT / "src")})  # this checkout's code


def test_regrade_cli_on_a_tiny_models_eval(tmp_path, tiny_checkpoint):
    ev = tmp_path / "ev"
    proc = _cli("eval", "--model", str(tiny_checkpoint), "--bench", "gsm8k", "--path", str(GSM8K_FIXTURE),
                "--limit", "3", "--max-new-tokens", "4", "--output", str(ev), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((ev / "summary.json").read_text())
    assert set(summary["accuracy_by_grader"]) == {"mathtune", "strict", "flexible", "math_verify"}
    assert "lm-eval strict-match" in (ev / "report.md").read_text()
    records = read_records(ev / "samples.jsonl")
    assert all(set(r["graders"]) == {"strict", "flexible", "math_verify"} for r in records)
    proc = _cli("regrade", str(ev), "--grader", "math-verify", "--output", str(tmp_path / "re"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "math-verify vs stored" in proc.stdout and "agreement" in proc.stdout
    regraded = read_records(tmp_path / "re" / "samples.jsonl")
    assert [r["correct"] for r in regraded] == [r["graders"]["math_verify"] for r in records]
    assert summary["decode_precision"] == {"precision": "fp32", "why": "eval.precision: fp32"}
    kept = json.loads((tmp_path / "re" / "summary.json").read_text())["decode_precision"]
    assert kept == summary["decode_precision"], "a regrade keeps how the completions were decoded"
    # bad input: one line, exit code 2, no traceback
    bad = _cli("regrade", str(tmp_path / "missing"), cwd=tmp_path)
    assert bad.returncode == 2 and "no samples file" in bad.stderr and "Traceback" not in bad.stderr


def test_regrade_of_a_fewshot_run_keeps_its_prompt_sets_strict_match(tmp_path):
    # gsm8k-cot's strict-match reads "The answer is N." (lm-eval gsm8k_cot); regrading must not fall back to `#### N`
    rec = {"index": 0, "sample": 0, "completion": " 120 / 4 = 30. The answer is 30.\n\n", "gold": "30",
           "correct": True}
    for name, eval_block in (("cot", "eval: {fewshot: 8, fewshot_set: gsm8k-cot}\n"), ("zero", "eval: {}\n")):
        source = _write(tmp_path / name / "samples.jsonl", [rec])
        (source.parent / "recipe.yaml").write_text(eval_block)
        write_regrade(source.parent, tmp_path / f"{name}-re", "strict", "mathtune", "gsm8k", 1, "mathtune regrade")
        (out,) = read_records(tmp_path / f"{name}-re" / "samples.jsonl")
        assert out["graders"]["strict"] is (name == "cot") and out["graders"]["flexible"] is True
        assert out["correct"] is (name == "cot") and out["extracted"] == ("30" if name == "cot" else "[invalid]")
