"""Reasoning diagnostics: the case table, near-repeat loops, aggregation and speed on runaway completions."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest
import yaml

from mathtune.answers.equiv import EquivResult
from mathtune.eval import diagnostics
from mathtune.eval.diagnostics import aggregate, count_doubt_markers, diagnose, ends_in_loop, ends_in_template_loop

CASES = yaml.safe_load((Path(__file__).parents[1] / "cases" / "diagnostics_cases.yaml").read_text(encoding="utf-8"))


def build(case: dict) -> str:
    return case.get("prefix", "") + case["text"] * case.get("times", 1) + case.get("suffix", "")


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case_table(case):
    got = diagnose(build(case), num_tokens=case.get("num_tokens"), gold=case.get("gold"))
    for field, want in case["expect"].items():
        if isinstance(want, float):
            assert got[field] == pytest.approx(want), field
        else:
            assert got[field] == want, field


def test_result_is_json_able_with_every_field():
    d = diagnose("The answer is 5. Wait, no, it's 6.", gold="6")
    assert json.loads(json.dumps(d)) == d
    assert set(d) == {
        "num_tokens", "num_answers", "doubt_markers", "doubt_per_1k_tokens", "repeated_3gram_ratio",
        "answer_flips", "loop", "first_correct_position", "last_stated_correct", "abandoned_correct", "grader_capped",
    }  # fmt: skip


def _varied(n: int, seed: int, words: tuple[str, ...]) -> str:
    """n sentences that are neither exact nor numbers-aside repeats: each draws its words afresh."""
    rng = random.Random(seed)
    return " ".join(f"step {i}: {rng.choice(words)} {rng.randint(2, 99)} to the {rng.choice(words)} of "
                    f"{rng.randint(2, 999)}." for i in range(n))


NOUNS = ("apples", "pears", "total", "sum", "bags", "coins", "cards", "miles", "hours", "boxes", "eggs", "cookies")


def test_near_repeat_loop_is_caught_by_the_tail_3gram_ratio():
    # A sampled loop changes a word each cycle, so no span repeats, not even with numbers read alike; 3-grams still
    # mostly repeat.
    healthy = _varied(40, 0, NOUNS)
    rng = random.Random(1)
    loop = "".join(f" Wait, so the {rng.choice(NOUNS)} is {i} and I need to check the {rng.choice(NOUNS)} again "
                   f"carefully." for i in range(60))
    assert not ends_in_loop(healthy)
    assert not ends_in_template_loop(loop)
    assert diagnose(healthy + loop)["loop"] is True
    # The same near-repeats followed by a real conclusion of 300+ healthy words no longer end in a loop.
    assert diagnose(healthy + loop + " " + _varied(40, 2, NOUNS))["loop"] is False


def test_template_loop_same_sentence_with_new_numbers():
    # as greedy GSM8K completions of the headline run do (benchmarks/results/gsm8k_default/tuned)
    pairs = [(560, 40), (560, 6000), (11600, 560), (12760, 560), (13000, 6000), (14600, 560)]
    lines = [f"They have {a}+{b}={a + b} coins in their piggy bank." for a, b in pairs] + ["They have 15160+6000=211"]
    start = "Rong has saved 20*2=40 coins.\nNeil has saved 2/5*40=16 coins.\n"
    assert ends_in_template_loop(start + "\n".join(lines))
    assert diagnose(start + "\n".join(lines))["loop"] is True
    assert not ends_in_template_loop(start + "\n".join(lines[:4]))  # four repeats are not yet a loop
    # a short legitimate chain of the same step, and a solution that ends with its answer line
    assert not ends_in_template_loop("60-10=50, 50-10=40, 40-10=30, 30-10=20, 20-10=10, 10-10=0")
    assert not ends_in_template_loop(start + "\n".join(lines) + "\nSo they have 14600 coins.\n#### 14600")


def test_symbolic_grader_calls_are_capped_and_reported(monkeypatch):
    calls = []

    def counting_check(pred: str, gold: str, timeout: float = 5.0) -> EquivResult:
        calls.append((pred, gold))
        numeric = pred.isdigit() and gold.isdigit()
        return EquivResult(numeric and int(pred) == int(gold), "match", "numeric" if numeric else "symbolic")

    monkeypatch.setattr(diagnostics, "check", counting_check)
    # 200 different symbolic answers: 1 (last vs gold) + 199 more (first-correct search) + 199 (flips) distinct pairs.
    text = "".join(f"The answer is $x^{{{i}}}$. " for i in range(200))
    d = diagnose(text, gold="x^{5}", max_symbolic=10)
    assert len(calls) == 10 and d["grader_capped"] is True
    # Past the cap only normalised text decides: x^{5} is still found, and every change still counts as a flip.
    assert (d["first_correct_position"], d["last_stated_correct"], d["answer_flips"]) == (5, False, 199)
    calls.clear()
    d = diagnose("The answer is $x^2$. " * 500, gold="x^3")  # one distinct pair, graded once
    assert len(calls) == 1 and d["grader_capped"] is False and d["answer_flips"] == 0
    calls.clear()
    # Numeric checks are cheap and never capped: 1 + 299 + 299 of them.
    d = diagnose("".join(f"The answer is {i}. " for i in range(300)), gold="1000", max_symbolic=10)
    assert len(calls) == 599 and d["grader_capped"] is False and d["answer_flips"] == 299


def test_markers_are_readable_and_extensible():
    assert isinstance(diagnostics.DOUBT_MARKERS, tuple) and "wait" in diagnostics.DOUBT_MARKERS
    assert count_doubt_markers("Eureka! eureka.", markers=("eureka",)) == 2
    # A phrase wins over a shorter marker inside it: "let me re-check" is one marker, not "re-check" + more.
    assert count_doubt_markers("Let me\nre-check.") == 1


def test_aggregate():
    diags = [
        diagnose("The answer is 5. Wait, no, it's 6.", gold="5"),  # reached 5 at 0, abandoned, 1 flip
        diagnose("The answer is 6.", gold="5"),  # never correct
        diagnose("Let's see. " + "Wait, no. " * 5),  # loop, no answer, no gold
    ]
    agg = aggregate(diags)
    assert agg["n"] == 3 and agg["n_with_gold"] == 2
    assert agg["loop_rate"] == pytest.approx(1 / 3)
    assert agg["flip_rate"] == pytest.approx(1 / 3)
    assert agg["no_answer_rate"] == pytest.approx(1 / 3)
    assert agg["grader_capped_rate"] == 0.0
    assert agg["mean_answer_flips"] == pytest.approx(1 / 3)
    assert agg["mean_num_answers"] == pytest.approx((2 + 1 + 0) / 3)
    assert agg["reached_correct_rate"] == 0.5 and agg["abandoned_correct_rate"] == 0.5
    assert agg["mean_first_correct_position"] == 0
    assert json.loads(json.dumps(agg)) == agg
    assert aggregate([]) == {"n": 0}


@pytest.mark.parametrize(
    "text",
    [
        # A healthy start, then a spiral of flip-flopping answers until max_tokens.
        "Let x be the number of apples. " * 200 + "Wait, no, it's 5. The answer is 6. Hmm, " * 2500,
        "".join(f"So the answer is {i}. " for i in range(4600)),  # 4600 different answers, all graded numerically
        "9" * 100_000,  # one 100k-character "word"
        "{\\boxed{" * 12_500,  # unclosed boxes
        " ".join(f"w{i}" for i in range(20_000)),  # all distinct words: the biggest 3-gram set
    ],
    ids=["flip_spiral", "drifting_answers", "one_word", "unclosed_boxes", "distinct_words"],
)
def test_fast_on_100k_characters(text):
    assert len(text) >= 100_000
    diagnose("The answer is 1/2.", gold="0.5")  # warm up imports and the grader outside the timing
    start = time.perf_counter()
    diagnose(text, gold="5")
    assert time.perf_counter() - start < 1.0
