"""Each reported metric is declared once: the summary, `compare` and the verifier's selection agree on the same
samples (majority vote with empty answers; the no-answer rate over every completion)."""

from __future__ import annotations

from mathtune.eval.compare import Evaluation, run_stats
from mathtune.eval.diagnostics import diagnose
from mathtune.eval.runner import summarize
from mathtune.verifier.select import block_accuracy


def record(index: int, sample: int, extracted: str | None, correct: bool) -> dict:
    return {"index": index, "sample": sample, "question": f"q{index}", "gold": "3", "extracted": extracted,
            "correct": correct, "completion": "...", "num_tokens": 10 + sample, "truncated": sample == 3,
            "reason": "no_answer" if extracted is None else ("equal" if correct else "different"),
            "rule": "last_number", "diagnostics": diagnose(f"The answer is {extracted}", 10 + sample, "3")}


# problem 0: two empty answers outvote nothing (they do not vote), so "3" (right) wins over "4";
# problem 1: no answer in two samples, "5" (wrong) once, "3" (right) once: a tie, the first seen ("5") wins;
# problem 2: "3" three times
ANSWERS = [["", "3", "", "4"], [None, "5", None, "3"], ["3", "3", "7", "3"]]
RECORDS = [record(i, s, a, a == "3") for i, answers in enumerate(ANSWERS) for s, a in enumerate(answers)]


def test_majority_vote_is_the_same_in_the_summary_and_the_verifier_selection():
    summary = summarize(RECORDS, samples=4)
    per_problem = [[{"answer": r["extracted"], "correct": r["correct"], "score": 0.5} for r in RECORDS
                    if r["index"] == i] for i in range(3)]
    selection = sum(block_accuracy(p, 4, "majority") for p in per_problem) / 3
    assert summary["maj@4"] == selection == 2 / 3


def test_no_answer_and_truncation_rates_are_the_same_in_the_summary_and_compare():
    summary = summarize(RECORDS, samples=4)
    problems = {f"q{i}": [r for r in RECORDS if r["index"] == i] for i in range(3)}
    stats = run_stats(Evaluation("a", None, problems, True), list(problems))
    for key in ("no_answer_rate", "truncation_rate", "mean_tokens"):
        assert summary[key] == stats[key], key
    assert summary["no_answer_rate"] == 2 / 12 and summary["truncation_rate"] == 3 / 12  # over every completion
