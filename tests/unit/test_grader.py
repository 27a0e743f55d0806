"""The grader case table (tests/cases/grader_cases.yaml), gold parsing per bench, and grade()'s result fields."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from mathtune.answers import GoldUnparseableError, GradeResult, grade, grade_detailed, parse_gold

CASES_PATH = Path(__file__).parents[1] / "cases" / "grader_cases.yaml"
CASES: list[dict[str, Any]] = yaml.safe_load(CASES_PATH.read_text(encoding="utf-8"))


def _case_id(index: int, case: dict[str, Any]) -> str:
    return f"{index:03d}-" + re.sub(r"[^a-z0-9]+", "-", case["note"].lower()).strip("-")


def test_case_table_shape() -> None:
    assert len(CASES) >= 400
    for case in CASES:
        assert set(case) <= {"completion", "gold", "bench", "expected", "note"}, case
        assert {"completion", "gold", "expected", "note"} <= set(case), case
        assert case["expected"] in (True, False, None), case
    notes = [case["note"] for case in CASES]
    assert len(notes) == len(set(notes)), "notes name the test ids; keep them unique"
    falses = sum(case["expected"] is False for case in CASES)
    assert falses >= len(CASES) // 4, "keep wrong answers well represented"


@pytest.mark.parametrize("case", CASES, ids=[_case_id(i, c) for i, c in enumerate(CASES)])
def test_grader_case(case: dict[str, Any]) -> None:
    result = grade_detailed(case["completion"], case["gold"], case.get("bench", "auto"))
    assert result.correct == case["expected"], result


@pytest.mark.parametrize(
    "raw, bench, expected",
    [
        ("Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 72", "gsm8k", "72"),
        ("She pays 500 + 500.\n#### 1,000", "gsm8k", "1,000"),
        ("#### -5.", "gsm8k", "-5"),
        ("no marker", "gsm8k", None),
        (r"So $x = \frac{1}{2}$, hence \boxed{\frac{1}{2}}.", "math", r"\frac{1}{2}"),
        (r"first \boxed{1} then \boxed{\{1, 2\}}", "math", r"\{1, 2\}"),
        ("no box", "math", "no box"),  # a bare answer is accepted by every bench
        ("42", "math", "42"),
        ("We find $x = 5$ and that is it.", "math", None),  # a sentence, not an answer
        ("18", "gsm8k", "18"),
        ("2k", "auto", "2k"),  # letters after a number are not a unit here
        ("Mrs. Hilt", "asdiv", "Mrs. Hilt"),
        ("Yes", "asdiv", "Yes"),
        ("5:45", "asdiv", "5:45"),
        ("-(1/3)", "asdiv", "-(1/3)"),
        (None, "auto", None),
        ("-12.0", "gsm-hard", "-12.0"),
        ("3.3333333333333335", "gsm-hard", "3.3333333333333335"),
        (3.3333333333333335, "gsm-hard", "3.3333333333333335"),
        (-12.0, "gsm-hard", "-12.0"),
        (7, "auto", "7"),
        (float("nan"), "gsm-hard", None),
        ("inf", "gsm-hard", None),
        ("twelve", "gsm-hard", None),
        ("42 (apples)", "svamp", "42"),
        ("42.0", "svamp", "42.0"),
        ("7 cm", "asdiv", "7"),
        ("9 (stamps)", "asdiv", "9"),
        ("3:4", "asdiv", "3:4"),
        ("1/4 (pie)", "asdiv", "1/4"),
        (8.0, "svamp", "8.0"),
        ("some apples", "svamp", None),
        ("  x = 3 ", "plain", "x = 3"),
        ("", "plain", None),
        ("Long\n#### 18", "auto", "18"),
        (r"The answer is \boxed{5}.", "auto", "5"),
        ("18", "auto", "18"),
        ("1,000", "auto", "1,000"),
        ("42 (apples)", "auto", "42"),
        (r"\frac{\sqrt2}{2}", "auto", r"\frac{\sqrt2}{2}"),
        ("(1, 2)", "auto", "(1, 2)"),
        ("first line\nsecond line", "auto", None),
        ("   ", "auto", None),
    ],
)
def test_parse_gold(raw: str | float, bench: str, expected: str | None) -> None:
    assert parse_gold(raw, bench) == expected


def test_parse_gold_unknown_bench_lists_known() -> None:
    with pytest.raises(ValueError, match="gsm8k"):
        parse_gold("1", "gsm9k")


@pytest.mark.parametrize(
    "completion, gold, reason, correct",
    [
        ("The answer is 18.", "#### 18", "match", True),
        ("The answer is 17.", "#### 18", "mismatch", False),
        ("I give up.", "#### 18", "no_answer", False),
        ("The answer is 18.", "no marker at all", "gold_unparseable", None),
    ],
)
def test_grade_reasons(completion: str, gold: str, reason: str, correct: bool | None) -> None:
    result = grade_detailed(completion, gold, bench="gsm8k")
    assert (result.reason, result.correct) == (reason, correct)


def test_grade_detailed_fields() -> None:
    result = grade_detailed(r"So \boxed{1,000}. Check: 1000 - 1 = 999", "Long\n#### 1000")
    assert result == GradeResult(True, "1,000", "1000", "boxed", "match", "numeric")


def test_grade_is_a_plain_bool() -> None:
    assert grade("The answer is 18.", "#### 18") is True
    assert grade("The answer is 17.", "#### 18") is False


@pytest.mark.parametrize("gold, bench", [("", "plain"), ("no marker at all", "gsm8k"), (None, "auto"), (float("nan"), "gsm-hard")])
def test_grade_raises_on_an_unreadable_gold(gold: object, bench: str) -> None:
    # grade() promises a bool; an unreadable gold is neither, so it says so instead of returning a silent False.
    with pytest.raises(GoldUnparseableError, match=f"bench={bench!r}"):
        grade("The answer is 18.", gold, bench=bench)  # type: ignore[arg-type]
    assert grade_detailed("The answer is 18.", gold, bench).correct is None  # type: ignore[arg-type]
    assert issubclass(GoldUnparseableError, ValueError)


@pytest.mark.parametrize("completion", [None, 18, b"The answer is 18."])
def test_grade_rejects_a_completion_that_is_not_text(completion: object) -> None:
    with pytest.raises(TypeError, match="completion must be a str"):
        grade(completion, "18")  # type: ignore[arg-type]
