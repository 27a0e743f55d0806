"""Reward case tables: each registered reward on hand-written completions, including the None (unjudgeable) cases."""

from __future__ import annotations

import doctest
import json
import math

import pytest

import mathtune.rewards as rewards_module
from mathtune.data.sources.reasoning_gym import entry_row
from mathtune.rewards import REWARDS, cosine_value

# (completion, gold answer, expected accuracy reward)
ACCURACY_CASES = [
    ("3 + 4 = 7\n#### 7", "7", 1.0),
    ("#### 7.0", "7", 1.0),                       # values compared, not strings
    ("The answer is \\boxed{\\frac{1}{2}}", "0.5", 1.0),
    ("#### 8", "7", 0.0),
    ("I am not sure.", "7", 0.0),                 # no answer at all: wrong, not unjudgeable
    ("\\boxed{4}. Wait, no, it's 5", "4", 1.0),   # the box outranks later prose (the grader's rule)
    ("#### 7", "", None),                         # no gold: cannot judge
    ("#### 7", "She has\nseven apples left", None),  # gold text the grader cannot read an answer from
]


@pytest.mark.parametrize("completion,gold,expected", ACCURACY_CASES)
def test_accuracy(completion, gold, expected):
    assert REWARDS.get("accuracy")()([completion], answer=[gold]) == [expected]


def test_accuracy_uses_reasoning_gym_score_answer():
    import reasoning_gym

    entry = next(iter(reasoning_gym.create_dataset("chain_sum", size=1, seed=5, min_terms=2, max_terms=2)))
    row = entry_row("chain_sum", entry)
    entry_json = json.dumps(row["meta"]["entry"])  # how the GRPO dataset keeps it
    gold = row["answer"]
    wrong = str(int(gold) + 1)
    fn = REWARDS.get("accuracy")()
    got = fn([f"#### {gold}", f"#### {wrong}", f"<answer>{gold}</answer>", "no answer"],
             answer=[gold] * 4, task=["chain_sum"] * 4, entry=[entry_json] * 4)
    assert got == [1.0, 0.0, 1.0, 0.0]


# (completion, options, expected format reward)
FORMAT_CASES = [
    ("3 + 4 = 7\n#### 7", {}, 1.0),
    ("The answer is 7", {}, 0.0),
    ("#### Step 2\nthen 7", {}, 1.0),            # a '#### ' line at all counts for format; the grader is stricter
    ("so \\boxed{7}", {"marker": "boxed"}, 1.0),
    ("#### 7", {"marker": "boxed"}, 0.0),
    ("<answer>7</answer>", {"marker": "answer_tag"}, 1.0),
    ("\\boxed{7}", {"marker": "any"}, 1.0),
    ("<think>3 + 4 is 7</think>\n#### 7", {"think": True}, 1.0),
    ("#### 7 <think>late</think>", {"think": True}, 0.0),
    ("<think></think>\n#### 7", {"think": True}, 0.0),  # an empty trace is not reasoning
]


@pytest.mark.parametrize("completion,options,expected", FORMAT_CASES)
def test_format(completion, options, expected):
    assert REWARDS.get("format")(**options)([completion]) == [expected]


def test_format_rejects_unknown_marker():
    with pytest.raises(ValueError, match="marker"):
        REWARDS.get("format")(marker="stars")


# (tokens, correct, max_len, expected)
COSINE_CASES = [
    (0, True, 100, 1.0),      # instant right answer: the most
    (100, True, 100, 0.5),    # right at the length limit: still positive
    (200, True, 100, 0.5),    # beyond the limit: clamped
    (0, False, 100, -1.0),    # instant wrong answer: the harshest
    (100, False, 100, -0.5),  # long wrong answer: punished less (it tried)
    (50, True, 100, 0.75),
]


@pytest.mark.parametrize("tokens,correct,max_len,expected", COSINE_CASES)
def test_cosine_value(tokens, correct, max_len, expected):
    assert math.isclose(cosine_value(tokens, correct, max_len), expected, abs_tol=1e-9)


def test_length_counts_tokens_and_is_none_without_gold():
    fn = REWARDS.get("length")(max_len=10)
    got = fn(["#### 7", "#### 8", "#### 7"], answer=["7", "7", ""], completion_ids=[[0] * 5, [0] * 5, [0] * 5])
    assert got[0] == pytest.approx(0.75) and got[1] == pytest.approx(-0.75) and got[2] is None
    # without token ids (outside TRL) whitespace words stand in: one word is short
    assert fn(["#### 7"], answer=["7"])[0] > 0.9


# (tokens, max_completion_length, cache, expected)
OVERLONG_CASES = [(0, 100, 20, 0.0), (80, 100, 20, 0.0), (90, 100, 20, -0.5), (100, 100, 20, -1.0), (150, 100, 20, -1.0)]


@pytest.mark.parametrize("tokens,limit,cache,expected", OVERLONG_CASES)
def test_overlong(tokens, limit, cache, expected):
    fn = REWARDS.get("overlong")(max_completion_length=limit, cache=cache)
    assert fn([""], completion_ids=[[0] * tokens]) == [pytest.approx(expected)]


def test_overlong_rejects_bad_cache():
    with pytest.raises(ValueError, match="cache"):
        REWARDS.get("overlong")(max_completion_length=10, cache=20)


REPETITION_CASES = [
    ("", 0.0),
    ("one two", 0.0),                                   # under 3 words: no 3-grams
    ("3 + 4 = 7 so the answer is 7", 0.0),
    ("a b c a b c", -0.25),                             # 4 trigrams, the last repeats the first
    ("wait wait wait wait wait", -2 / 3),
]


@pytest.mark.parametrize("completion,expected", REPETITION_CASES)
def test_repetition(completion, expected):
    assert REWARDS.get("repetition")()([completion]) == [pytest.approx(expected)]


DOUBT_CASES = [
    ("4 + 4 = 8\n#### 8", {}, 0.0),
    ("Wait, 4 + 4 = 8.\n#### 8", {}, -0.25),                       # one marker
    ("The answer is 8. Wait, no, it's 9.", {}, -1.0),              # two markers (0.5) + one flip (0.5)
    ("The answer is 8. Wait, no, it's 9.", {"per_flip": 1.0}, -1.0),  # 1.5, capped at max_penalty 1
    ("The answer is 8. Wait, no, it's 9.", {"per_flip": 1.0, "max_penalty": 5.0}, -1.5),
    ("Hmm. The answer is 8.", {"per_marker": 0.1}, -0.1),
    ("the answer is 1/2. Hmm, the answer is 0.5", {"per_marker": 0.0}, 0.0),  # a restatement is not a flip
]


@pytest.mark.parametrize("completion,options,expected", DOUBT_CASES)
def test_doubt(completion, options, expected):
    assert REWARDS.get("doubt")(**options)([completion]) == [pytest.approx(expected)]


def test_doubt_penalises_a_loop():
    loop = "Let me think about it again. " * 10
    assert REWARDS.get("doubt")(per_marker=0.0, loop=0.7)([loop]) == [pytest.approx(-0.7)]


def test_rewards_accept_conversational_completions():
    chat = [[{"role": "assistant", "content": "#### 7"}]]
    assert REWARDS.get("accuracy")()(chat, answer=["7"]) == [1.0]
    assert REWARDS.get("format")()(chat) == [1.0]


def test_every_builtin_reward_is_registered_and_named():
    assert {"accuracy", "format", "length", "overlong", "repetition", "doubt"} <= set(REWARDS.names())
    for name in ("accuracy", "format", "length", "overlong", "repetition", "doubt"):
        assert REWARDS.get(name)().__name__ == name  # TRL logs rewards/<__name__>/mean


def test_docstring_examples_run():
    result = doctest.testmod(rewards_module)
    assert result.attempted >= 8 and result.failed == 0
