"""The fast path of equivalence: read a short answer as an exact number, or say it is not one.

Pure string handling and `fractions.Fraction`; model text never reaches `eval` or `sympify` here.
"""

from __future__ import annotations

import re
from fractions import Fraction

REL_TOL = 1e-4  # absorbs rounding ("3.3333" vs 10/3, gsm-hard's float noise) and nothing coarser
_MAX_LEN = 120  # longer strings are not a bare number; leave them to the symbolic path
_MAX_EXP = 400  # "1e999999999" would build a billion-digit integer; such answers go symbolic (with a timeout)

_WRAPPER_RE = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_DROP = (
    "\\displaystyle", "\\left", "\\right", "\\!", "\\,", "\\;", "\\:", "\\ ", "~",
    "^\\circ", "^{\\circ}", "\u00b0", "\\(", "\\)", "\\[", "\\]",
)  # fmt: skip
_RHS_RE = re.compile(r"=|\\approx|\u2248")
_DEC = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+"
_ARG = r"(?:\{\s*(-?(?:\d+(?:\.\d+)?))\s*\}|(\d))"
_TIMES_TEN = r"\s*(?:\\times|\\cdot|\u00d7|\*)\s*10\s*\^\s*\{?\s*(?P<e2>[-+]?\d+)\s*\}?"
_NUMBER_RE = re.compile(
    rf"(?P<sign>[-+]?)\s*(?:"
    rf"\\frac\s*{_ARG}\s*{_ARG}"
    rf"|(?P<num>-?\d+(?:\.\d+)?)\s*/\s*(?P<den>-?\d+(?:\.\d+)?)"
    rf"|(?P<dec>{_DEC})(?:[eE](?P<e1>[-+]?\d+)|{_TIMES_TEN})?"
    rf")"
)
# Units and words after a number ("5 cm", "42 (apples)", "18 dollars"), but not math ("2 pi", "5x", "3 sqrt 2").
_UNIT_RE = re.compile(r"\(?\s*([A-Za-z]+)(?:[ .\-/]+[A-Za-z]+)*\.?\s*\)?\s*(?:\^\{?[23]\}?|\u00b2|\u00b3)?\.?")
_MATH_WORDS = {"pi", "sqrt", "e", "i", "inf", "infty", "ln", "log", "sin", "cos", "tan", "mod", "choose", "or", "and"}
_ONE_LETTER_UNITS = {"m", "g", "s", "h", "l", "L", "K"}


def clean(text: str) -> str:
    """Strip the wrappers an answer comes in: `$`, `\\$`, `\\text{}`, `\\left`, spacing, degrees, `\\dfrac`."""
    s = text.strip().replace("\\$", "").replace("$", "").replace("{,}", ",").replace("\u2212", "-")
    for token in _DROP:
        s = s.replace(token, "")
    for _ in range(3):  # nested wrappers: \text{\textbf{5}}
        s = _WRAPPER_RE.sub(r"\1", s)
    s = s.replace("\\%", "%").replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    return s.strip().rstrip(".").strip()


def _is_unit_tail(tail: str) -> bool:
    """True if what follows a number is only a percent sign or unit-like words."""
    tail = tail.strip()
    if tail.startswith("%"):
        tail = tail[1:].strip()
    if not tail:
        return True
    m = _UNIT_RE.fullmatch(tail)
    if m is None:
        return False
    first = m.group(1)
    if first.lower() in _MATH_WORDS:
        return False
    return len(first) > 1 or first in _ONE_LETTER_UNITS


def to_number(text: str) -> Fraction | None:
    """The exact value of a short numeric answer (`1,000`, `-\\frac12`, `3/4`, `1.5e3`, `x = 3`, `5 cm`), or None."""
    s = clean(text)
    if not s or len(s) > _MAX_LEN:
        return None
    # "x = 3" and "3 + 5 = 8" answer with their right-hand side.
    parts = _RHS_RE.split(s)
    s = parts[-1].strip()
    m = _NUMBER_RE.match(s)
    if m is None or not _is_unit_tail(s[m.end() :]):
        return None
    try:
        if m.group("dec") is not None:
            exp = int(m.group("e1") or m.group("e2") or 0)
            if abs(exp) > _MAX_EXP:
                return None
            value = Fraction(m.group("dec").replace(",", "")) * Fraction(10) ** exp
        elif m.group("num") is not None:
            value = Fraction(m.group("num")) / Fraction(m.group("den"))
        else:
            num = m.group(2) or m.group(3)
            den = m.group(4) or m.group(5)
            value = Fraction(num) / Fraction(den)
    except (ValueError, ZeroDivisionError):
        return None
    return -value if m.group("sign") == "-" else value


def numbers_match(a: Fraction, b: Fraction) -> bool:
    """Two integers must be equal; otherwise relative tolerance `REL_TOL` (1e-4) of the larger magnitude."""
    if a.denominator == 1 and b.denominator == 1:
        return a == b
    return abs(a - b) <= Fraction(REL_TOL) * max(abs(a), abs(b))
