"""Are a predicted and a gold final answer the same? Exact numbers first, then normalised text, then math-verify."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mathtune.answers import symbolic
from mathtune.answers.numeric import REL_TOL, clean, numbers_match, to_number

_SPACE_RE = re.compile(r"\s+")
_CHOICE_RE = re.compile(r"\(?([a-e])\)?")

__all__ = ["REL_TOL", "EquivResult", "check", "is_equiv"]


@dataclass(frozen=True)
class EquivResult:
    """The verdict, its status ("match", "mismatch", "timeout", "error") and the path that decided it."""

    equal: bool
    status: str
    method: str  # "numeric" | "string" | "symbolic" | "empty"


def _canon(text: str) -> str:
    """Text compared literally: wrappers and spaces gone, lower case, "(B)" read as "b"."""
    s = _SPACE_RE.sub("", clean(text)).lower()
    m = _CHOICE_RE.fullmatch(s)
    return m.group(1) if m else s


def _math(text: str) -> str:
    """The answer as one inline-math span for math-verify's LaTeX parser (dollar signs are never currency there)."""
    return "$" + text.replace("\\$", "").replace("$", "").strip() + "$"


def check(pred: str, gold: str, timeout: float = 5.0) -> EquivResult:
    """Compare `pred` with `gold` and say how it was decided; see `is_equiv` for the rules."""
    if not pred.strip() or not gold.strip():
        return EquivResult(False, "mismatch", "empty")
    a, b = to_number(pred), to_number(gold)
    if a is not None and b is not None:
        # Both plain numbers: the exact answer is known here, math-verify could only add its own rounding.
        same = numbers_match(a, b)
        return EquivResult(same, "match" if same else "mismatch", "numeric")
    if _canon(pred) == _canon(gold):
        return EquivResult(True, "match", "string")
    status, _ = symbolic.check(_math(gold), _math(pred), timeout)
    return EquivResult(status == "match", status, "symbolic")


def is_equiv(pred: str, gold: str, timeout: float = 5.0) -> bool:
    """True if `pred` states the same answer as `gold`.

    Numbers are read exactly (`1,000`, `$18`, `\\$18`, `18%`, `18.0`, `5 cm`, `x = 3`, `\\frac12`, `\\dfrac{1}{2}`,
    `1/2`, `1.5e3`): two integers must be equal, otherwise a relative tolerance of 1e-4 applies (so `0.5` ==
    `\\frac12` and `3.3333` == `10/3`, but `3.33` != `10/3`). A percent sign is dropped, not divided: `18%` == `18`
    but != `0.18`. Anything else is compared as normalised text, then by math-verify (`verify(parse(gold),
    parse(pred))`, gold first as it is asymmetric) in a child process killed after `timeout` seconds, which counts
    as not equal. Safe to call from any thread.
    """
    return check(pred, gold, timeout).equal
