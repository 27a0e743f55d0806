"""Verifier metrics and answer selection against hand-computed cases."""

from __future__ import annotations

import random

import pytest

from mathtune.eval.metrics import maj_at_k
from mathtune.verifier.metrics import auroc, classification_metrics, ece, plot_reliability, reliability_bins
from mathtune.verifier.select import (
    accuracy_vs_n, best_of_n, default_ns, format_table, group_problems, majority, plot_accuracy_vs_n, weighted_vote,
)

SCORES = [0.9, 0.8, 0.7, 0.6, 0.5]
LABELS = [True, False, True, False, False]


def test_auroc_by_hand():
    # correct {0.9, 0.7} vs incorrect {0.8, 0.6, 0.5}: 0.9 beats 3, 0.7 beats 2 -> 5 of 6 pairs
    assert auroc(SCORES, LABELS) == pytest.approx(5 / 6)
    # a tie counts half: 0.5 vs 0.5 -> 0.5, 0.5 vs 0.2 -> 1
    assert auroc([0.5, 0.5, 0.2], [True, False, False]) == pytest.approx(0.75)
    assert auroc([0.1, 0.9], [True, False]) == 0.0
    assert auroc([0.3, 0.3, 0.3, 0.3], [True, False, True, False]) == 0.5


def test_auroc_needs_both_labels():
    with pytest.raises(ValueError, match="both"):
        auroc([0.2, 0.4], [True, True])


def test_ece_by_hand():
    scores = [0.05, 0.15, 0.85, 0.95, 1.0]
    labels = [False, True, True, True, False]
    # bins: [0,.1) {0.05: wrong} |0-0.05|; [.1,.2) {0.15: right} |1-0.15|; [.8,.9) {0.85: right} |1-0.85|;
    # [.9,1] {0.95 right, 1.0 wrong} |0.5-0.975|  -> (0.05 + 0.85 + 0.15)/5 + 2/5 * 0.475 = 0.40
    assert ece(scores, labels) == pytest.approx(0.40)
    bins = reliability_bins(scores, labels)
    assert [b["n"] for b in bins] == [1, 1, 0, 0, 0, 0, 0, 0, 1, 2]
    assert bins[9]["accuracy"] == 0.5 and bins[9]["confidence"] == pytest.approx(0.975)
    assert ece([0.0, 1.0], [False, True]) == 0.0


def test_classification_metrics_by_hand():
    m = classification_metrics(SCORES, LABELS)  # every score >= 0.5: all predicted correct
    assert m["confusion"] == {"tp": 2, "fp": 3, "fn": 0, "tn": 0}
    assert m["accuracy"] == pytest.approx(0.4) and m["precision"] == pytest.approx(0.4) and m["recall"] == 1.0
    assert m["f1"] == pytest.approx(2 * 0.4 / 1.4)
    m = classification_metrics(SCORES, LABELS, threshold=0.75)  # predicts correct for 0.9, 0.8
    assert m["confusion"] == {"tp": 1, "fp": 1, "fn": 1, "tn": 2}
    assert m["auroc"] == pytest.approx(5 / 6)
    with pytest.raises(ValueError, match="probabilities"):
        classification_metrics([1.2], [True])


def test_reliability_plot_is_written(tmp_path):
    plot_reliability(reliability_bins(SCORES, LABELS), tmp_path / "r.png", "t")
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("answers, weights, expected", [
    (["3", "5", "5", "3"], [0.9, 0.1, 0.2, 0.3], 0),  # 3: 1.2 > 5: 0.3
    (["5", "3", "3", "7"], [0.9, 0.2, 0.3, 0.1], 0),  # 5: 0.9 > 3: 0.5, although 3 has more votes
    (["5", "3", "3", "7"], [0.3, 0.2, 0.3, 0.1], 1),  # 3: 0.5 > 5: 0.3
    (["4", "$4", "4.", "9"], [0.1, 0.1, 0.1, 0.25], 0),  # "4", "$4", "4." are one answer: 0.3 > 0.25
    (["2", "6"], [0.5, 0.5], 0),  # tie: the answer seen first
    ([None, "", None], [0.9, 0.9, 0.9], None),  # no answer to vote for
])
def test_weighted_vote(answers, weights, expected):
    assert weighted_vote(answers, weights) == expected


def test_majority_and_best_of_n():
    assert majority(["5", "3", "3", "7"]) == 1
    assert majority(["3", "5", "5", "3"]) == 0  # tie: first seen
    assert majority([None, "", "4"]) == 2
    assert best_of_n([0.2, 0.7, 0.7, 0.1]) == 1  # tie: first
    assert best_of_n([0.1]) == 0


def test_accuracy_vs_n_by_hand():
    problem = [{"answer": "5", "correct": True, "score": 0.9}, {"answer": "3", "correct": False, "score": 0.8},
               {"answer": "3", "correct": False, "score": 0.7}, {"answer": "5", "correct": True, "score": 0.1}]
    table = accuracy_vs_n([problem])
    assert [r["n"] for r in table] == [1, 2, 4]
    one, two, four = table
    assert (one["majority"], one["best_of_n"], one["weighted_vote"], one["pass"]) == (0.5, 0.5, 0.5, 0.5)
    # blocks {s0, s1}: all pick 5 (right); {s2, s3}: majority tie -> 3, best s2, weighted 3 (0.7 > 0.1): wrong
    assert (two["majority"], two["best_of_n"], two["weighted_vote"], two["pass"]) == (0.5, 0.5, 0.5, 1.0)
    # all four: majority tie -> 5 (first), best s0 = 5, weighted 3 (1.5) beats 5 (1.0)
    assert (four["majority"], four["best_of_n"], four["weighted_vote"], four["pass"]) == (1.0, 1.0, 0.0, 1.0)
    assert "| 4 | 100.0% | 100.0% | 0.0% | 100.0% |" in format_table(table)


def test_majority_matches_maj_at_k_of_the_evaluation_summary():
    rng = random.Random(0)
    problems = [[{"answer": rng.choice(["1", "2", "3", None]), "correct": False, "score": rng.random()}
                 for _ in range(4)] for _ in range(50)]
    for p in problems:
        for s in p:
            s["correct"] = s["answer"] == "2"
    table = accuracy_vs_n(problems, ns=[4])
    expected = maj_at_k([[s["answer"] for s in p] for p in problems], [[s["correct"] for s in p] for p in problems], 4)
    assert table[0]["majority"] == pytest.approx(expected)


def test_group_problems_keeps_row_order_and_ns():
    rows = [{"group": "b", "answer": "1", "is_correct": True}, {"group": "a", "answer": "", "is_correct": False},
            {"group": "b", "answer": "2", "is_correct": False}]
    assert group_problems(rows, [0.1, 0.2, 0.3]) == [
        [{"answer": "1", "correct": True, "score": 0.1}, {"answer": "2", "correct": False, "score": 0.3}],
        [{"answer": None, "correct": False, "score": 0.2}]]
    assert default_ns(8) == [1, 2, 4, 8] and default_ns(6) == [1, 2, 4, 6] and default_ns(1) == [1]
    with pytest.raises(ValueError, match="fewer than N=4"):
        accuracy_vs_n([[{"answer": "1", "correct": True, "score": 1.0}]], ns=[4])


def test_selection_plot_is_written(tmp_path):
    table = [{"n": 1, "problems": 1, "majority": 0.1, "best_of_n": 0.2, "weighted_vote": 0.3, "pass": 0.4},
             {"n": 2, "problems": 1, "majority": 0.2, "best_of_n": 0.3, "weighted_vote": 0.3, "pass": 0.6}]
    plot_accuracy_vs_n(table, tmp_path / "s.png", "t")
    assert (tmp_path / "s.png").stat().st_size > 1000
