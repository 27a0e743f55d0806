"""`mathtune compare`: pairing by question, paired statistics against hand-computed values, examples, bad input."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mathtune.cli import app
from mathtune.eval.compare import compare, excerpt, write_comparison
from mathtune.eval.runner import SAMPLES_FILE, SUMMARY_FILE, score, summarize

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass
class Completion:
    """What a generator returns per sample (eval/generate.py): text, token count, whether it hit the cap."""

    text: str
    num_tokens: int
    truncated: bool = False


def write_eval(folder: Path, problems: list[tuple[str, str, str]], *, tokens: int = 10, truncated=(),
               summary: bool = True) -> Path:
    """An eval folder as eval/runner.py writes it, from (question, gold, completion) triples, graded for real."""
    folder.mkdir(parents=True)
    records = []
    for i, (question, gold, text) in enumerate(problems):
        row = {"question": question, "answer": gold}
        done = Completion(text, tokens, truncated=i in truncated)
        records.append(score(i, 0, row, f"<prompt>{question}", done, "auto"))
    (folder / SAMPLES_FILE).write_text("".join(json.dumps(r) + "\n" for r in records))
    if summary:
        (folder / SUMMARY_FILE).write_text(json.dumps(summarize(records, 1)))
    return folder


def q(i: int) -> str:
    return f"What is {i} + {i}?"


# Verdicts on q0..q5: A right on q0 q1 q5, B right on q0 q2 q3 q4 q5. So B alone right on 3 (q2 q3 q4), A alone on 1
# (q1): exact McNemar p = 2 * (C(4,0) + C(4,1)) / 2^4 = 0.625; difference (5 - 3) / 6 = +1/3.
# q6 has a gold that cannot be parsed (ungradable in both), q7 only A has, q8 only B has.
A_RIGHT = [True, True, False, False, False, True]
B_RIGHT = [True, False, True, True, True, True]


def answer(i: int, right: bool) -> str:
    return f"{i} + {i} = {2 * i if right else 2 * i + 1}\n#### {2 * i if right else 2 * i + 1}"


@pytest.fixture
def two_evals(tmp_path) -> tuple[Path, Path]:
    a = [(q(i), str(2 * i), answer(i, ok)) for i, ok in enumerate(A_RIGHT)]
    b = [(q(i), str(2 * i), "Wait, let me re-check. " * 3 + answer(i, ok)) for i, ok in enumerate(B_RIGHT)]
    a += [(q(6), "", "#### 12"), (q(7), "14", "#### 14")]
    b += [(q(6), "", "#### 12"), (q(8), "16", "#### 16")]
    b.reverse()  # other order and other indexes: pairing must go by question
    return (write_eval(tmp_path / "eval-a", a, tokens=10, truncated={1}),
            write_eval(tmp_path / "eval-b", b, tokens=30))


def test_paired_statistics_match_hand_computed_values(two_evals):
    data = compare(list(two_evals)).data
    assert data["shared_problems"] == 7  # q0..q6; q7 and q8 are in one run each
    sa, sb = data["stats"]["eval-a"], data["stats"]["eval-b"]
    assert (sa["n_graded"], sb["n_graded"]) == (6, 6)  # q6 is ungradable and left out, not counted wrong
    # Wilson 95% for 3/6 and 5/6, computed by hand from the closed form.
    assert sa["accuracy"] == pytest.approx(0.5) and sb["accuracy"] == pytest.approx(5 / 6)
    assert (sa["accuracy_low"], sa["accuracy_high"]) == pytest.approx((0.18762, 0.81238), abs=1e-4)
    assert (sb["accuracy_low"], sb["accuracy_high"]) == pytest.approx((0.43650, 0.96995), abs=1e-4)
    (c,) = data["comparisons"]
    assert (c["a"], c["b"], c["n_paired"]) == ("eval-a", "eval-b", 6)
    assert (c["b_only"], c["a_only"]) == (3, 1)
    assert c["mcnemar_method"] == "exact" and c["mcnemar_p"] == pytest.approx(0.625)
    assert c["diff"] == pytest.approx(1 / 3)
    assert c["diff_low"] < 1 / 3 < c["diff_high"]
    # Each resample's difference is a count over 6 items, so the percentile bounds are multiples of 1/6.
    assert 6 * c["diff_low"] == pytest.approx(round(6 * c["diff_low"]))


def test_diagnostic_deltas(two_evals):
    data = compare(list(two_evals)).data
    sa, sb = data["stats"]["eval-a"], data["stats"]["eval-b"]
    deltas = data["comparisons"][0]["deltas"]
    assert sa["truncation_rate"] == pytest.approx(1 / 7) and sb["truncation_rate"] == 0.0
    assert deltas["truncation_rate"] == pytest.approx(-1 / 7)
    assert deltas["mean_tokens"] == pytest.approx(20.0)
    # B says "Wait, let me re-check." three times per completion (2 markers each) on the 6 graded problems.
    assert sa["doubt_per_1k_tokens"] == 0.0
    assert sb["doubt_per_1k_tokens"] == pytest.approx(6 / 7 * 1000 * 6 / 30)
    assert deltas["doubt_per_1k_tokens"] == pytest.approx(sb["doubt_per_1k_tokens"])
    assert set(deltas) >= {"no_answer_rate", "repeated_3gram_ratio", "flip_rate", "loop_rate"}


def test_disagreement_examples(two_evals):
    c = compare(list(two_evals), examples=2).data["comparisons"][0]
    assert [e["question"] for e in c["a_only_examples"]] == [q(1)]
    # first K in the reference run's order, though B was written in reverse
    assert [e["question"] for e in c["b_only_examples"]] == [q(2), q(3)]
    ex = c["a_only_examples"][0]
    assert (ex["gold"], ex["a_extracted"], ex["b_extracted"]) == ("2", "2", "3")
    assert ex["a_excerpt"].endswith("#### 2") and "re-check" in ex["b_excerpt"]
    assert compare(list(two_evals), examples=0).data["comparisons"][0]["b_only_examples"] == []


def test_excerpt_keeps_start_and_end():
    text = "start " + "x" * 1000 + " the answer is 5"
    short = excerpt(text, 100)
    assert short.startswith("start") and short.endswith("the answer is 5") and len(short) < 120
    assert excerpt("short", 100) == "short"


def test_outputs_are_written_and_embedded(two_evals, tmp_path):
    paths = write_comparison(compare(list(two_evals)), tmp_path / "out")
    data = json.loads(paths["json"].read_text())
    md = paths["md"].read_text()
    assert data["plots"] == ["compare_accuracy.png", "compare_lengths.png", "compare_diagnostics.png"]
    for name in data["plots"]:
        assert (tmp_path / "out" / name).read_bytes()[:8] == PNG_MAGIC
        assert f"]({name})" in md
    assert "eval-b right, eval-a wrong (3 shown of 3)" in md and "eval-a right, eval-b wrong (1 shown of 1)" in md
    assert "McNemar p = 0.625 (exact)" in md
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temporary files left


def test_run_folder_stands_for_its_stages(tmp_path):
    run = tmp_path / "run"
    problems = [(q(i), str(2 * i), answer(i, True)) for i in range(3)]
    write_eval(run / "tuned", problems)
    write_eval(run / "baseline", problems[:2] + [(q(2), "4", answer(2, False))])
    (run / "adapter").mkdir()
    write_eval(run / "tuned-svamp", [("Other set?", "1", "#### 1")])  # an extra eval set: other problems
    data = compare([run]).data
    assert [r["label"] for r in data["runs"]] == ["baseline", "tuned"]  # baseline is the reference
    assert data["comparisons"][0]["b_only"] == 1
    # folders of other stages (e.g. periodic evals during GRPO) are all taken, in name order
    steps = tmp_path / "evals"
    for step in (20, 10):
        write_eval(steps / f"step-{step:05d}", problems)
    assert [r["label"] for r in compare([steps]).data["runs"]] == ["step-00010", "step-00020"]
    # two run folders: the same stage names are told apart by their run folder
    other = tmp_path / "other"
    write_eval(other / "tuned", problems)
    assert [r["label"] for r in compare([run / "tuned", other / "tuned"]).data["runs"]] == ["run/tuned", "other/tuned"]


def test_cli_prints_the_table_and_writes_the_report(two_evals, tmp_path):
    out = tmp_path / "cmp"
    result = CliRunner().invoke(app, ["compare", *map(str, two_evals), "--output", str(out), "--examples", "1"])
    assert result.exit_code == 0, result.output
    assert "7 shared problems" in result.stdout
    assert "| accuracy [95% interval] | 50.0% [18.8, 81.2] | 83.3% [43.6, 97.0] | +33.3 pts" in result.stdout
    assert (out / "compare.md").is_file() and (out / "compare.json").is_file()
    assert "1 shown of 3" in (out / "compare.md").read_text()


def _corrupt(folder: Path) -> str:
    path = folder / SAMPLES_FILE
    lines = path.read_text().splitlines()
    lines[2] = lines[2][:40]
    path.write_text("\n".join(lines) + "\n")
    return f"{path}:3: not valid JSON"


def _drop_field(folder: Path) -> str:
    path = folder / SAMPLES_FILE
    lines = path.read_text().splitlines()
    rec = json.loads(lines[1])
    del rec["question"]
    lines[1] = json.dumps(rec)
    path.write_text("\n".join(lines) + "\n")
    return f"{path}:2: missing field 'question'"


@pytest.mark.parametrize("case", ["missing", "no_samples", "corrupt", "field", "disjoint", "one", "output"])
def test_bad_input_is_one_line_and_exit_2(case, two_evals, tmp_path):
    a, b = two_evals
    args = [str(a), str(b)]
    if case == "missing":
        args, expected = [str(a), str(tmp_path / "nope")], f"{tmp_path / 'nope'}: no such folder"
    elif case == "no_samples":
        (tmp_path / "empty").mkdir()
        args, expected = [str(a), str(tmp_path / "empty")], "no samples.jsonl here or in a stage folder"
    elif case == "corrupt":
        expected = _corrupt(b)
    elif case == "field":
        expected = _drop_field(a)
    elif case == "disjoint":
        c = write_eval(tmp_path / "eval-c", [("Another question?", "1", "#### 1")])
        args, expected = [str(a), str(c)], "no problem is shared by eval-a (8), eval-c (1)"
    elif case == "one":
        args, expected = [str(a)], "compare needs at least two evaluations"
    else:
        (tmp_path / "out").write_text("a file")
        expected = f"--output {tmp_path / 'out'}: exists and is not a folder"
    result = CliRunner().invoke(app, ["compare", *args, "--output", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert case == "output" or not (tmp_path / "out").exists()
