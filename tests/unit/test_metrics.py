"""Metrics against hand-computed values: the arithmetic is in the comments so a reader can redo it."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from mathtune.eval.metrics import (
    accuracy_ci,
    maj_at_k,
    majority_vote,
    mcnemar,
    mean_pass_at_k,
    paired_bootstrap,
    pass_at_k,
)


def bools(k: int, n: int) -> list[bool]:
    return [True] * k + [False] * (n - k)


# Wilson score intervals without continuity correction, 95%: Newcombe (1998), Stat. Med. 17:857, Table I, method 3.
@pytest.mark.parametrize(
    "k, n, low, high",
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)],
)
def test_wilson_matches_newcombe(k, n, low, high):
    ci = accuracy_ci(bools(k, n))
    assert ci.n == n and ci.value == pytest.approx(k / n)
    assert ci.low == pytest.approx(low, abs=1e-4) and ci.high == pytest.approx(high, abs=1e-4)


def test_wilson_is_sane_at_the_edges():
    # 0/10: z = 1.95996, z^2 = 3.8415; high = (z^2/20) / (1 + z^2/10) * 2 = 0.19207 / 1.38415 * 2 = 0.2775
    zero, full = accuracy_ci(bools(0, 10)), accuracy_ci(bools(10, 10))
    assert (zero.low, zero.high) == (0.0, pytest.approx(0.2775, abs=1e-4))
    assert (full.low, full.high) == (pytest.approx(0.7225, abs=1e-4), 1.0)


def test_wilson_drops_ungradable_items():
    # The caller reports the Nones; the interval is over the 4 graded items only.
    ci = accuracy_ci([True, None, False, True, None, True])
    assert ci.n == 4 and ci.value == 0.75
    with pytest.raises(ValueError):
        accuracy_ci([None, None])


def test_wider_confidence_gives_wider_interval():
    a, b = accuracy_ci(bools(30, 100), 0.90), accuracy_ci(bools(30, 100), 0.99)
    assert b.low < a.low < 0.3 < a.high < b.high


@pytest.mark.parametrize(
    "n, c, k, expected",
    [
        (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
        (4, 1, 1, 0.25),  # k = 1 is plain accuracy c/n
        (10, 3, 2, 8 / 15),  # 1 - C(7,2)/C(10,2) = 1 - 21/45 = 24/45
        (10, 0, 5, 0.0),  # no correct sample, never passes
        (10, 10, 1, 1.0),
        (3, 1, 3, 1.0),  # n - c = 2 < k = 3: every draw of 3 holds the correct one
        (6, 2, 3, 0.8),  # 1 - C(4,3)/C(6,3) = 1 - 4/20
    ],
)
def test_pass_at_k_hand_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_k_is_stable_for_large_n():
    # Exact rational value of 1 - C(197,10)/C(200,10); the product form must agree to float precision.
    exact = 1 - Fraction(math.comb(197, 10), math.comb(200, 10))
    assert pass_at_k(200, 3, 10) == pytest.approx(float(exact), rel=1e-12)


@pytest.mark.parametrize("n, c, k", [(5, 2, 6), (5, 2, 0), (5, 6, 1), (5, -1, 1)])
def test_pass_at_k_rejects_bad_arguments(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_mean_pass_at_k():
    # problem 1: n=5, c=2, k=2 -> 0.7; problem 2: n=4, c=0 -> 0.0; problem 3: n=3, c=3 -> 1.0; mean = 1.7/3
    per_problem = [bools(2, 5), bools(0, 4), bools(3, 3)]
    assert mean_pass_at_k(per_problem, 2) == pytest.approx(1.7 / 3)


def test_majority_vote_counts_ties_and_nones():
    assert majority_vote(["5", "6", "6", None, None, None]) == "6"  # None never wins
    assert majority_vote(["7", "8", "8", "7"]) == "7"  # 2-2 tie: "7" appeared first
    assert majority_vote([None, None]) is None and majority_vote([]) is None
    # Light normalisation: whitespace, $...$ and a trailing full stop do not split a group.
    assert majority_vote(["3", "$ 12 $", "12.", "3 ", "1 2"]) == "$ 12 $"


def test_majority_vote_with_a_grader():
    def equiv(x: str, y: str) -> bool:
        return abs(float(Fraction(x)) - float(Fraction(y))) < 1e-9

    # Without the grader: "0.5", "1/2", "2/4" are three groups of one; "3" x2 wins.
    answers = ["3", "0.5", "1/2", "3", "2/4"]
    assert majority_vote(answers) == "3"
    # With it they form one group of three, represented by its first member.
    assert majority_vote(answers, equiv=equiv) == "0.5"


def test_maj_at_k_hand_values():
    answers = [["5", "6", "5", "6", "6"], ["7", "8", "8", "7"], [None, None, "9"]]
    correct = [[True, False, True, False, False], [False, True, True, False], [False, False, True]]
    # k=3: p1 "5" x2 vs "6" x1 -> "5" right; p2 "8" x2 -> right; p3 only "9" -> right; 3/3
    assert maj_at_k(answers, correct, 3) == 1.0
    # k=2: p1 tie 5/6 -> "5" (first) right; p2 tie 7/8 -> "7" wrong; p3 no answer -> wrong; 1/3
    assert maj_at_k(answers, correct, 2) == pytest.approx(1 / 3)
    # k=1: first sample's own grade; p1 right, p2 wrong, p3 no answer; 1/3
    assert maj_at_k(answers, correct, 1) == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        maj_at_k(answers, correct, 4)  # p3 has only 3 samples


def test_maj_at_k_five_samples():
    # p1 first 5: "5" x2, "6" x3 -> "6", graded False
    assert maj_at_k([["5", "6", "5", "6", "6"]], [[True, False, True, False, False]], 5) == 0.0


def test_mcnemar_exact_for_few_discordant_pairs():
    # b01 = 9 (a wrong, b right), b10 = 1, 5 concordant. m = 10 < 25 so exact:
    # P(X <= 1 | Bin(10, 1/2)) = (C(10,0) + C(10,1)) / 2^10 = 11/1024; two-sided p = 22/1024 = 0.021484375
    a = [False] * 9 + [True] + [True] * 5
    b = [True] * 9 + [False] + [True] * 5
    r = mcnemar(a, b)
    assert (r.b01, r.b10, r.method, r.statistic) == (9, 1, "exact", None)
    assert r.p_value == 22 / 1024


def test_mcnemar_chi2_for_many_discordant_pairs():
    # b01 = 10, b10 = 30: m = 40 >= 25. chi2 = (|10 - 30| - 1)^2 / 40 = 361/40 = 9.025;
    # P(chi2_1 > 9.025) = P(|Z| > 3.00416) = 0.002663
    a = [False] * 10 + [True] * 30
    b = [True] * 10 + [False] * 30
    r = mcnemar(a, b)
    assert (r.b01, r.b10, r.method) == (10, 30, "chi2")
    assert r.statistic == pytest.approx(9.025) and r.p_value == pytest.approx(0.002663, abs=1e-6)


def test_mcnemar_identical_and_symmetric():
    assert mcnemar([True, False], [True, False]).p_value == 1.0  # no discordant pairs
    # 5 vs 5 discordant: tail P(X <= 5 | Bin(10, 1/2)) = 638/1024 > 1/2, so the doubled p caps at 1
    assert mcnemar([True] * 5 + [False] * 5, [False] * 5 + [True] * 5).p_value == 1.0


def test_paired_bootstrap_constructed_case():
    # 100 items: b gains 30, loses 10, 60 ties -> diff 0.2. Per-item d has mean 0.2, E[d^2] = 0.4, so
    # sd(mean) = sqrt((0.4 - 0.04) / 100) = 0.06 and the 95% interval is about 0.2 +- 0.118.
    a = [False] * 30 + [True] * 10 + [True] * 40 + [False] * 20
    b = [True] * 30 + [False] * 10 + [True] * 40 + [False] * 20
    r = paired_bootstrap(a, b)
    assert r.diff == pytest.approx(0.2) and r.n == 100
    assert r.low == pytest.approx(0.082, abs=0.02) and r.high == pytest.approx(0.318, abs=0.02)
    assert r.p_value < 0.01
    assert paired_bootstrap(a, b) == r  # seeded: reproducible
    assert paired_bootstrap(b, a).diff == pytest.approx(-0.2)


def test_paired_bootstrap_edge_cases():
    same = paired_bootstrap([True, False] * 10, [True, False] * 10)
    assert (same.diff, same.low, same.high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    # b always right, a always wrong: every resample is +1; p is its floor 1 / (n_resamples + 1), never 0.
    full = paired_bootstrap([False] * 5, [True] * 5, n_resamples=999)
    assert (full.diff, full.low, full.high) == (1.0, 1.0, 1.0) and full.p_value == 1 / 1000
    with pytest.raises(ValueError):
        paired_bootstrap([True], [True, False])
    with pytest.raises(ValueError, match="None"):
        mcnemar([True, None], [True, False])


def test_completion_rates_count_closed_calculator_notes():
    from mathtune.eval.metrics import completion_rates

    records = [{"completion": "2*3=<<2*3=6>>6\n#### 6", "num_tokens": 10},
               {"completion": "2*3=<<2*3=", "num_tokens": 4, "truncated": True},
               {"completion": "6", "num_tokens": 1}]
    rates = completion_rates(records)
    assert rates["calculator_rate"] == pytest.approx(1 / 3)
    assert rates["truncation_rate"] == pytest.approx(1 / 3) and rates["mean_tokens"] == 5
    assert completion_rates([])["calculator_rate"] is None
