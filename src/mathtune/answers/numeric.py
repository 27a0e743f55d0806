"""The fast path of equivalence: read a short answer as an exact number, or say it is not one; compare two numbers.

Pure string handling and `fractions.Fraction`; model text never reaches `eval` or `sympify` here.

How close is close enough is a property of how the *gold* is written (issue 16), never a blanket tolerance:
- an integer gold ("18", "1,450,000", "-12.0") needs the exact value: 1450099.5 is not 1450000;
- a decimal gold is matched by a value agreeing to its stated digits (rounded or truncated) when the value cannot
  be written in those digits ("1/3" for "0.33") or when the gold is visibly a rounding (4 or more significant
  digits: 3.14159 for "3.1416", not 3.15); a short decimal ("2.5", "12.5") is an exact answer, 2.54 is not 2.5;
- a program-computed float (12 or more significant digits, as GSM-Hard's "3.3333333333333335") stands for a value a
  program computed with float noise: within 1e-9 relative (and 1e-6 absolute) of it, written exactly ("10/3"), or
  rounded or truncated to a decimal of at least 4 significant digits ("3.3333", "3.333"; not "3.33" or "3");
- an exact fraction gold whose decimals never end (\\frac{1}{3}) is matched by itself or by such a decimal
  ("0.3333", "0.33333"; not "0.333" or "0.33").
None of these can accept an answer one unit off in the gold's last digit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from mathtune.answers.equation import stated_value

_MAX_LEN = 120  # longer strings are not a bare number; leave them to the symbolic path
_MAX_EXP = 400  # "1e999999999" would build a billion-digit integer; such answers go symbolic (with a timeout)
_PROGRAM_FLOAT_DIGITS = 12  # significant digits from which a decimal is a program's float, not a stated answer
_NOISE_REL, _NOISE_ABS = Fraction(1, 10**9), Fraction(1, 10**6)
_MIN_ROUNDED_DIGITS = 4  # a decimal standing for 1/3 or a program's 3.3333333333333335 carries >= 4 digits

_WRAPPER_RE = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_LATEX_THOUSANDS_RE = re.compile(r",\s*\\!\s*|\{,\}\s*")  # "11,\! 111" and "1{,}000": a LaTeX thousands separator
_DROP = (
    "\\displaystyle", "\\left", "\\right", "\\!", "\\,", "\\;", "\\:", "\\ ", "~",
    "^\\circ", "^{\\circ}", "\u00b0", "\\(", "\\)", "\\[", "\\]",
)  # fmt: skip
_DEC = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+"
_ARG = r"(?:\{\s*(-?(?:\d+(?:\.\d+)?))\s*\}|(\d))"
_TIMES_TEN = r"\s*(?:\\times|\\cdot|\u00d7|\*)\s*10\s*\^\s*\{?\s*(?P<e2>[-+]?\d+)\s*\}?"
_NUMBER_RE = re.compile(
    rf"(?P<sign>[-+]?)\s*(?P<paren>\(\s*)?(?:"
    rf"\\frac\s*{_ARG}\s*{_ARG}"
    rf"|(?P<num>-?\d+(?:\.\d+)?)\s*/\s*(?P<den>-?\d+(?:\.\d+)?)"
    rf"|(?P<dec>{_DEC})(?:[eE](?P<e1>[-+]?\d+)|{_TIMES_TEN})?"
    rf")(?(paren)\s*\))"
)
# Units and words after a number ("5 cm", "42 (apples)", "18 dollars"), but not math ("2 pi", "5x", "3 sqrt 2").
_UNIT_RE = re.compile(r"\(?\s*([A-Za-z]+)(?:[ .\-/]+[A-Za-z]+)*\.?\s*\)?\s*(?:\^\{?[23]\}?|\u00b2|\u00b3)?\.?")
_MATH_WORDS = {"pi", "sqrt", "e", "i", "inf", "infty", "ln", "log", "sin", "cos", "tan", "mod", "choose", "or", "and"}
_ONE_LETTER_UNITS = {"m", "g", "s", "h", "l", "L", "K"}


@dataclass(frozen=True)
class Number:
    """A number as written: its exact value, and its decimal places when written as a decimal (None: exact form)."""

    value: Fraction
    decimals: int | None  # "3.50" -> 2, "18.0" -> 1; None for integers, fractions, `\frac`, scientific notation
    digits: int = 0  # significant digits written, for telling a program's float from a stated decimal

    @property
    def is_integer(self) -> bool:
        """True when the value is a whole number, however it is written ("18", "18.0", "1.8e1")."""
        return self.value.denominator == 1


def clean(text: str) -> str:
    """Strip the wrappers an answer comes in: `$`, `\\$`, `\\text{}`, `\\left`, spacing, degrees, `\\dfrac`."""
    s = text.strip().replace("\\$", "").replace("$", "").replace("\u2212", "-")
    if "\\" in s or "{" in s or "~" in s or "\u00b0" in s:  # plain answers ("18", "1,000") skip the LaTeX work
        s = _LATEX_THOUSANDS_RE.sub(",", s)
        for token in _DROP:
            s = s.replace(token, "")
        for _ in range(3):  # nested wrappers: \text{\textbf{5}}
            s = _WRAPPER_RE.sub(r"\1", s)
        s = s.replace("\\%", "%").replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    return s.strip().rstrip(".").strip()


def is_unit_tail(tail: str) -> bool:
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


def _significant(dec: str) -> int:
    return len(dec.replace(",", "").replace(".", "").lstrip("0")) or 1


def read_number(text: str, cleaned: bool = False) -> Number | None:
    """A short numeric answer as written (`1,000`, `-\\frac12`, `3/4`, `1.5e3`, `5 cm`, `-(1/3)`), or None.

    An equation is a number only when it states a value (`x = 3`, `3 + 5 = 8`, see `equation.stated_value`).
    `cleaned`: the text already went through `clean` (the equivalence check cleans each side once).
    """
    s = text if cleaned else clean(text)
    if not s or len(s) > _MAX_LEN:
        return None
    if "=" in s or "approx" in s or "\u2248" in s:
        value = stated_value(s)
        if value is None:
            return None
        s = value
    m = _NUMBER_RE.match(s)
    if m is None or not is_unit_tail(s[m.end() :]):
        return None
    decimals, digits = None, 0
    try:
        if m.group("dec") is not None:
            exp = int(m.group("e1") or m.group("e2") or 0)
            if abs(exp) > _MAX_EXP:
                return None
            dec = m.group("dec").replace(",", "")
            value = Fraction(dec) * Fraction(10) ** exp if exp else Fraction(dec)
            if exp == 0 and "." in dec:
                decimals, digits = len(dec.split(".")[1]), _significant(dec)
        elif m.group("num") is not None:
            value = Fraction(m.group("num")) / Fraction(m.group("den"))
        else:
            # _ARG's unnamed groups come after the named `sign` (1) and `paren` (2)
            value = Fraction(m.group(3) or m.group(4)) / Fraction(m.group(5) or m.group(6))
    except (ValueError, ZeroDivisionError):
        return None
    return Number(-value if m.group("sign") == "-" else value, decimals, digits)


def to_number(text: str) -> Fraction | None:
    """The exact value of a short numeric answer (`1,000`, `-\\frac12`, `3/4`, `1.5e3`, `x = 3`, `5 cm`), or None."""
    number = read_number(text)
    return number.value if number is not None else None


def _terminates(value: Fraction) -> bool:
    """True if the value has a finite decimal expansion (denominator of the form 2^a 5^b)."""
    d = value.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    return d == 1


def _agrees_to(value: Fraction, written: Fraction, decimals: int) -> bool:
    """True if `written` is `value` rounded (half away from zero) or truncated to `decimals` places."""
    scale = 10**decimals
    scaled = abs(value) * scale
    truncated = Fraction(int(scaled), scale)
    rounded = Fraction(int(scaled + Fraction(1, 2)), scale)
    sign = -1 if value < 0 else 1
    return written in (sign * truncated, sign * rounded)


def numbers_match(pred: Number | Fraction, gold: Number | Fraction) -> bool:
    """Does the predicted number state the gold one, to the precision the gold is written with (module docstring)?"""
    p = pred if isinstance(pred, Number) else Number(pred, None)
    g = gold if isinstance(gold, Number) else Number(gold, None)
    if p.value == g.value:
        return True
    if g.decimals is not None and g.digits >= _PROGRAM_FLOAT_DIGITS and not g.is_integer:
        # A program's float: the value it stands for is within float noise, written exactly or rounded.
        if abs(p.value - g.value) <= min(_NOISE_REL * abs(g.value), _NOISE_ABS):
            return True
        return _rounds(g.value, p)
    if g.decimals is not None and not g.is_integer:
        # A stated decimal: a value that cannot be written in its digits (1/3 for "0.33"), or, for a gold that is
        # visibly a rounding (>= 4 significant digits, "3.1416"), a more precise decimal, agreeing to its digits.
        # A short decimal ("2.5", "12.5") is an exact answer: 2.54 is not 2.5.
        if p.decimals is None:
            fits = not _terminates(p.value)
        else:
            fits = p.decimals > g.decimals and g.digits >= _MIN_ROUNDED_DIGITS
        return fits and _agrees_to(p.value, g.value, g.decimals)
    if g.decimals is None and not _terminates(g.value):
        return _rounds(g.value, p)  # an exact fraction such as 1/3, whose decimals never end
    return False


def _rounds(value: Fraction, p: Number) -> bool:
    """True if `p` is a decimal of at least 4 significant digits that rounds or truncates `value` (0.3333 for 1/3)."""
    return p.decimals is not None and p.decimals >= 1 and p.digits >= _MIN_ROUNDED_DIGITS and _agrees_to(
        value, p.value, p.decimals
    )
