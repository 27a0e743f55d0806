"""The field's graders as pure functions: lm-eval's GSM8K strict-match / flexible-extract and math-verify."""

from __future__ import annotations

import pytest

from mathtune.answers.external import (
    GRADERS,
    external_verdicts,
    flexible_extract,
    lm_eval_flexible,
    lm_eval_strict,
    math_verify_grade,
    strict_extract,
)

GSM_GOLD = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72"


@pytest.mark.parametrize(
    "completion, strict, flexible",
    [
        ("48 + 24 = 72\n#### 72", "72", "72"),
        ("#### 71\n#### 72", "71", "72"),  # strict takes the first, flexible the last
        ("#### $72", "[invalid]", "$72"),  # the $ comes before the digits
        ("The answer is 72.", "[invalid]", "72."),
        ("It is -5 degrees", "[invalid]", "-5"),
        ("x 7 y", "[invalid]", "7"),  # one digit: the second alternative
        ("no digits", "[invalid]", "[invalid]"),
        ("#### 72\n\nQuestion: and 5 + 5? #### 10", "72", "72"),  # cut at the stop sequence first
    ],
)
def test_filters_extract_what_lm_eval_extracts(completion: str, strict: str, flexible: str) -> None:
    assert (strict_extract(completion), flexible_extract(completion)) == (strict, flexible)


@pytest.mark.parametrize(
    "completion, gold, strict, flexible",
    [
        ("48 + 24 = 72\n#### 72", GSM_GOLD, True, True),
        ("#### 72.", GSM_GOLD, True, True),  # "\.$" ignored
        ("#### 1,000", "#### 1000", True, True),  # "," ignored
        ("#### 18.0", "18", False, False),  # strings, not values
        ("#### $18", "18", False, True),
        ("The answer is 72.", GSM_GOLD, False, True),
        ("The answer is 72. Check: 72 - 24 = 48.", GSM_GOLD, False, False),  # flexible reads the last number
        (r"So \boxed{\frac{1}{2}}", "0.5", False, False),
        ("The answer is 72", "no marker and many words in a gsm8k solution", None, None),
    ],
)
def test_regex_graders(completion: str, gold: str, strict: bool | None, flexible: bool | None) -> None:
    bench = "gsm8k" if strict is None else "auto"
    assert lm_eval_strict(completion, gold, bench) is strict
    assert lm_eval_flexible(completion, gold, bench) is flexible


@pytest.mark.parametrize(
    "completion, gold, expected",
    [
        (r"So the answer is $\boxed{\frac{1}{2}}$.", "0.5", True),
        (r"So the answer is $\boxed{\frac{1}{3}}$.", "0.5", False),
        ("48 + 24 = 72\n#### 72", GSM_GOLD, True),
        ("Total: 1000 dollars.", "#### 1,000", True),  # the gold's thousands comma is not a tuple
        (r"$\boxed{2x=6}$", "6", True),  # math-verify unwraps an equation to its right-hand side; mathtune does not
        ("anything", "", None),
    ],
)
def test_math_verify_grade(completion: str, gold: str, expected: bool | None) -> None:
    assert math_verify_grade(completion, gold) is expected


def test_external_verdicts_keys_and_values() -> None:
    verdicts = external_verdicts("48 + 24 = 72\n#### 72", GSM_GOLD, "gsm8k")
    assert tuple(verdicts) == GRADERS == ("strict", "flexible", "math_verify")
    assert verdicts == {"strict": True, "flexible": True, "math_verify": True}
    assert set(external_verdicts("x", None).values()) == {None}
