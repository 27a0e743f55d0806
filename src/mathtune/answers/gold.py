"""Read the gold final answer out of a benchmark's answer field (GSM8K, MATH, GSM-Hard, SVAMP, ASDiv, plain)."""

from __future__ import annotations

import math
import re

from mathtune.answers.extract import last_boxed

BENCHES = ("auto", "gsm8k", "math", "gsm-hard", "svamp", "asdiv", "plain")
_LEADING_NUMBER_RE = re.compile(
    r"\s*([-+\u2212]?(?:\d+/\d+|(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|\.\d+))"
)
_RATIO_RE = re.compile(r"\s*(\d+\s*:\s*\d+)\s*(?:\([^()]*\))?\s*")  # ASDiv's "3:5" answers
# What may follow a dataset's number: nothing, or a unit in words/parentheses ("42 (apples)", "7 cm").
_UNIT_TAIL_RE = re.compile(r"\s*(?:%|\(?\s*[A-Za-z][A-Za-z .\-/]*\)?\.?)?\s*")
_PROSE_LEN = 200  # a bare answer is short; longer unmarked text is a solution we cannot read an answer from


def _gsm8k(raw: str) -> str | None:
    if "####" not in raw:
        return None
    answer = raw.rsplit("####", 1)[1].strip()
    return answer.rstrip(".").strip() or None


def _float_target(raw: str) -> str | None:
    """GSM-Hard's float target as its own string ("-12.0", "3.3333333333333335"); None unless finite."""
    try:
        value = float(raw.replace(",", ""))
    except ValueError:
        return None
    return raw if math.isfinite(value) else None


def _number_with_unit(raw: str) -> str | None:
    """SVAMP/ASDiv: the leading number of "42 (apples)", "7 cm", "1/4 (pie)", "5.0"; None if other text follows."""
    m = _LEADING_NUMBER_RE.match(raw)
    if m is None or not _UNIT_TAIL_RE.fullmatch(raw[m.end() :]):
        return None
    return m.group(1).replace("\u2212", "-")


def parse_gold(raw: str | float | int, bench: str = "auto") -> str | None:
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
    if bench == "gsm8k":
        return _gsm8k(text)
    if bench == "math":
        return last_boxed(text) or None
    if bench == "gsm-hard":
        return _float_target(text)
    if bench in ("svamp", "asdiv"):
        ratio = _RATIO_RE.fullmatch(text)
        return ratio.group(1) if ratio else _number_with_unit(text)
    if bench == "plain":
        return text
    # auto: the dataset's own marker wins; a bare short string is the answer itself.
    if "####" in text:
        return _gsm8k(text)
    if "\\boxed" in text or "\\fbox" in text:
        return last_boxed(text) or None
    number = _number_with_unit(text)
    if number is not None:
        return number
    return text if len(text) <= _PROSE_LEN and "\n" not in text else None
