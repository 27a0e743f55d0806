"""Extraction rules: boxes, `#### N`, "the answer is", corrections, the last number, and speed on long text."""

from __future__ import annotations

import time

import pytest

from mathtune.answers.extract import Extraction, extract_answer, last_boxed, last_number, stated_answers


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"so \boxed{5}", "5"),
        (r"\boxed{1} then \boxed{2}", "2"),
        (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
        (r"\boxed{\sqrt{\frac{a}{b}}} end", r"\sqrt{\frac{a}{b}}"),
        (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),
        (r"\fbox{7}", "7"),
        (r"\boxed 5$ and more", "5"),
        (r"\boxed{ 12 }", "12"),
        (r"\boxed{3} and a broken \boxed{", "3"),  # the unclosed box is skipped, not returned half
        (r"\boxed{", None),
        (r"\boxedx", None),
        ("no box here", None),
        ("", None),
    ],
)
def test_last_boxed(text: str, expected: str | None) -> None:
    assert last_boxed(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The answer is 4. Wait, no, it's 5.", ["4", "5"]),
        ("The answer is 4. Actually, it should be 6.", ["4", "6"]),
        (r"\boxed{3} ... \boxed{4}", ["3", "4"]),
        ("Blah\n#### 1,000", ["1,000"]),
        (r"The answer is \boxed{18}.", ["18"]),  # one statement, not two
        (r"Final Answer: The final answer is $\frac{3}{4}$. I hope it is correct.", [r"\frac{3}{4}"]),
        ("Answer: 7\nThe final answer is 8", ["7", "8"]),
        ("#### Step 2\nWe add.", []),  # a markdown heading is not an answer
        ("Compute 3+4. Wait, no, it's 3+5 = 8.", []),  # a correction needs an earlier statement
        ("The answer is: **18**.", ["18"]),
        ("the answer is (1, 2), done", ["(1, 2)"]),
        ("the answer is [1, 2).", ["[1, 2)"]),
        ("The answer is 5 because 2+3=5", ["5"]),
        ("The answer is 5, which is odd.", ["5"]),
        (r"The answer is \(x = 3\).", ["x = 3"]),
        ("The answer is 3.5.", ["3.5"]),
        ("", []),
    ],
)
def test_stated_answers(text: str, expected: list[str]) -> None:
    assert stated_answers(text) == expected


@pytest.mark.parametrize(
    "text, answer, rule",
    [
        (r"The answer is 4 but \boxed{5} and then 6", "5", "boxed"),
        ("The answer is 4.\n#### 5", "5", "hash"),
        ("#### 5\nThe answer is 4.", "5", "hash"),
        ("The answer is 4. Then we add 6.", "4", "answer_is"),
        ("The answer is 4. Wait, no, it's 5.", "5", "answer_is"),
        ("We have 3 apples and 7 pears, 10 fruits.", "10", "last_number"),
        ("It costs $1,250.50 in total.", "1,250.50", "last_number"),
        ("temperature drops to -4.", "-4", "last_number"),
        ("ratio 3/4.", "3/4", "last_number"),
        ("about 1.5e3 m", "1.5e3", "last_number"),
        ("values (1,2)", "2", "last_number"),
        ("no digits at all", None, "none"),
        ("", None, "none"),
    ],
)
def test_extract_answer_priority(text: str, answer: str | None, rule: str) -> None:
    assert extract_answer(text) == Extraction(answer, rule)


def test_last_number_unicode_minus() -> None:
    assert last_number("x = \u22123") == "-3"


@pytest.mark.parametrize(
    "text",
    [
        "1," * 50_000,
        "\\boxed{" * 15_000,
        "The answer is " * 8_000,
        "answer: {(" * 10_000,
        "Wait, no, it's " * 6_000,
        "#### " * 20_000,
        "9" * 100_000,
        "the" + " " * 100_000,
        "The answer is 1" + "(" * 100_000,
    ],
    ids=["commas", "open_boxes", "answer_is", "answer_colon", "restate", "hashes", "digits", "spaces", "parens"],
)
def test_extraction_is_fast_on_100k_text(text: str) -> None:
    start = time.perf_counter()
    extract_answer(text)
    stated_answers(text)
    last_boxed(text)
    # Linear work takes well under a second; catastrophic backtracking would take minutes.
    assert time.perf_counter() - start < 2.0
