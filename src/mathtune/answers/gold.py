"""Read the gold final answer out of a benchmark's answer field (GSM8K, MATH, GSM-Hard, SVAMP, ASDiv, plain).

Every bench reads its own format first (GSM8K's `#### N` tail, MATH's last `\\boxed{}`, GSM-Hard's float target,
SVAMP/ASDiv's number with its unit) and then accepts a bare answer as given ("42", "x = 3", "Mrs. Hilt", "5:45"),
because a user or a dataset's `answer` column often holds just that. A unit is dropped only where the equivalence
rules would read it as a unit too (`42 (apples)`, `7 cm`), so "2k" stays "2k" and is not cut to 2.
For the numeric benches (gsm8k, gsm-hard, svamp) a bare gold must be a number; math, asdiv and auto accept any short
answer. Unreadable (None): empty, not a string or number, a non-finite float, or prose (several lines, long, or a
sentence of five or more words) with no marker.
"""

from __future__ import annotations

import math
import re

from mathtune.answers.extract import last_boxed
from mathtune.answers.numeric import is_unit_tail, to_number

BENCHES = ("auto", "gsm8k", "math", "gsm-hard", "svamp", "asdiv", "plain")
_LEADING_NUMBER_RE = re.compile(
    r"\s*([-+\u2212]?(?:\d+/\d+|(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|\.\d+))"
)
_RATIO_RE = re.compile(r"\s*(\d+\s*:\s*\d+)\s*(?:\([^()]*\))?\s*")  # ASDiv's "3:5" and "5:45" answers
_PROSE_LEN = 200  # a bare answer is short; longer unmarked text is a solution we cannot read an answer from
_PROSE_WORDS = 5  # this many words (outside $...$) make a sentence, not an answer: "We find $x = 5$ and that is it."
_WORD_RE = re.compile(r"\b[A-Za-z]{2,}\b")
_MATH_SPAN_RE = re.compile(r"\$[^$]*\$|\\\(.*?\\\)|\\[A-Za-z]+(?:\{[^{}]*\})?")
NUMERIC_BENCHES = ("gsm8k", "gsm-hard", "svamp")  # their answers are numbers: a bare gold must be one too


def _gsm8k(raw: str) -> str | None:
    answer = raw.rsplit("####", 1)[1].strip()
    return answer.rstrip(".").strip() or None


def _float_target(raw: str) -> str | None:
    """GSM-Hard's float target as its own string ("-12.0", "3.3333333333333335"); None unless a finite number."""
    try:
        value = float(raw.replace(",", ""))
    except ValueError:
        return None
    return raw if math.isfinite(value) else None


def _number_with_unit(raw: str) -> str | None:
    """The leading number of "42 (apples)", "7 cm", "1/4 (pie)", "5.0"; None if anything but a unit follows."""
    m = _LEADING_NUMBER_RE.match(raw)
    if m is None or not is_unit_tail(raw[m.end() :]):
        return None
    return m.group(1).replace("\u2212", "-")


def _bare(text: str, bench: str) -> str | None:
    """A bare answer: its number when only a unit follows, else (not for numeric benches) short one-line text."""
    number = _number_with_unit(text)
    if number is not None:
        return number
    if bench in NUMERIC_BENCHES:
        return text if to_number(text) is not None else None  # "x = 3", "\\frac{1}{2}"; not prose or "six"
    if len(text) > _PROSE_LEN or "\n" in text:
        return None
    return None if len(_WORD_RE.findall(_MATH_SPAN_RE.sub(" ", text))) >= _PROSE_WORDS else text


def parse_gold(raw: str | float | int | None, bench: str = "auto") -> str | None:
    """The gold final answer from a dataset field, or None when it cannot be read (never graded either way)."""
    if bench not in BENCHES:
        raise ValueError(f"unknown bench {bench!r}; known: {', '.join(BENCHES)}")
    if isinstance(raw, bool) or raw is None:
        return None
    if isinstance(raw, (int, float)):  # GSM-Hard ships float targets; repr keeps every digit
        return _float_target(repr(raw))
    text = raw.strip()
    if not text:
        return None
    if bench == "plain":
        return text
    # The dataset's own marker wins whatever the bench; a GSM8K solution without its `####` line is prose.
    if "####" in text and bench in ("auto", "gsm8k"):
        return _gsm8k(text)
    if "\\boxed" in text or "\\fbox" in text:
        return last_boxed(text) or None
    if bench == "gsm-hard" and _float_target(text) is not None:
        return text
    if bench in ("svamp", "asdiv"):
        ratio = _RATIO_RE.fullmatch(text)
        if ratio:
            return re.sub(r"\s+", "", ratio.group(1))
    if bench == "gsm-hard" and text.lower().lstrip("+-") in ("nan", "inf", "infinity"):
        return None
    return _bare(text, bench)
