"""Are a predicted and a gold final answer the same? Exact numbers first, then normalised text, then math-verify."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mathtune.answers import equation, symbolic
from mathtune.answers.numeric import clean, numbers_match, read_number

_SPACE_RE = re.compile(r"\s+")
_LIST_AND_RE = re.compile(r",?\s+(?:and|or)\s+(?=[^\s,]{1,24}$)")  # "1, 2, and 3" lists "1, 2, 3"
_CHOICE_RE = re.compile(r"\(?([a-eA-E])\)?")
# Prose answers (names, "Yes", "Mrs. Hilt") compare without case; LaTeX and symbols never do (3R^2 is not 3r^2).
_WORDS_RE = re.compile(r"[A-Za-z][A-Za-z'.\-]*(?:\s+[A-Za-z][A-Za-z'.\-]*)*")
# A clock time ("5:45", "12:05 pm") is text, not the ratio 5/45 math-verify would read it as.
_TIME_RE = re.compile(r"(\d{1,2}):([0-5]\d)\s*((?:[ap])\.?\s*m\.?)?", re.IGNORECASE)

# Identifiers in LaTeX: commands (\\pi, \\Pi) and single letters; \\text{...} holds words, not variables.
_TOKEN_RE = re.compile(r"\\text\s*\{[^{}]*\}|\\[A-Za-z]+|[A-Za-z]")

__all__ = ["EquivResult", "check", "is_equiv"]


@dataclass(frozen=True)
class EquivResult:
    """The verdict, its status ("match", "mismatch", "timeout", "error") and the path that decided it."""

    equal: bool
    status: str
    method: str  # "numeric" | "string" | "symbolic" | "equation" | "time" | "empty"


def _verdict(equal: bool, method: str) -> EquivResult:
    return EquivResult(equal, "match" if equal else "mismatch", method)


def _canon(s: str) -> str:
    """Cleaned text compared literally: spaces gone, "(B)" read as "b", prose words without case."""
    if "," in s:
        s = _LIST_AND_RE.sub(", ", s)
    m = _CHOICE_RE.fullmatch(s.replace(" ", ""))
    if m:
        return m.group(1).lower()
    if _WORDS_RE.fullmatch(s) and len(s) > 1:
        return _SPACE_RE.sub(" ", s).lower().rstrip(".")
    return _SPACE_RE.sub("", s)


def _time(s: str) -> tuple[int, int, str] | None:
    if ":" not in s:
        return None
    m = _TIME_RE.fullmatch(s)
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2)), (m.group(3) or "").replace(".", "").replace(" ", "").lower()


def _case_clash(pred: str, gold: str) -> bool:
    """True if the two use an identifier in different case (`r` vs `R`, `\\pi` vs `\\Pi`).

    math-verify's LaTeX parser lower-cases every letter, so it would call 3r^2 and 3R^2 equal; in mathematics
    they are different symbols, so such a pair is decided here, as a mismatch, before math-verify sees it.
    """

    def variants(text: str) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for tok in _TOKEN_RE.findall(text):
            if not tok.startswith("\\text"):
                out.setdefault(tok.lower(), set()).add(tok)
        return out

    p, g = variants(pred), variants(gold)
    return any(p[k] != g[k] for k in p.keys() & g.keys())


def _math(text: str) -> str:
    """The answer as one inline-math span for math-verify's LaTeX parser (dollar signs are never currency there)."""
    text = text.replace("\\$", "").replace("$", "").strip()
    return "$" + (_LIST_AND_RE.sub(", ", text) if "," in text else text) + "$"


def _value_side(parts: list[str]) -> str | None:
    """The value an equation states (`x = 3` -> "3", `3 + 5 = 8` -> "8"), or None for a real equation."""
    if equation.is_variable(parts[0]) or all(equation.is_arithmetic(p) for p in parts[:-1]):
        return parts[-1]
    return None


def _equations(pred: str, gold: str, timeout: float) -> EquivResult | None:
    """Decide when either (cleaned) side is an equation; None when neither is, or both are real equations."""
    p, g = equation.sides(pred), equation.sides(gold)
    if p is None and g is None:
        return None
    if p is not None and g is not None:
        if equation.is_variable(p[0]) and equation.is_variable(g[0]):
            if p[0].replace(" ", "") != g[0].replace(" ", ""):  # x = 3 is not y = 3 (as math-verify holds)
                return _verdict(False, "equation")
            return check(p[-1], g[-1], timeout)
        return None  # two equations: normalised and compared by math-verify (both sides count)
    if p is not None:  # only the prediction is an equation: it must state the value (x = gold)
        value = _value_side(p)
        return check(value, gold, timeout) if value is not None else _verdict(False, "equation")
    value = g[-1] if equation.is_variable(g[0]) else None  # only the gold: "x = 3" is answered by "3"
    return check(pred, value, timeout) if value is not None else _verdict(False, "equation")


def check(pred: str, gold: str, timeout: float = 5.0) -> EquivResult:
    """Compare `pred` with `gold` and say how it was decided; see `is_equiv` for the rules."""
    if not pred.strip() or not gold.strip():
        return EquivResult(False, "mismatch", "empty")
    cp, cg = clean(pred), clean(gold)
    gold_time = _time(cg)
    if gold_time is not None:
        pred_time = _time(cp)
        return _verdict(pred_time is not None and pred_time[:2] == gold_time[:2]
                        and (not pred_time[2] or not gold_time[2] or pred_time[2] == gold_time[2]), "time")
    a, b = read_number(cp, cleaned=True), read_number(cg, cleaned=True)
    if a is not None and b is not None:
        if "=" in cp or "=" in cg:
            decided = _equations(cp, cg, timeout)
            if decided is not None and decided.method == "equation":
                return decided
        # Both plain numbers: the exact answer is known here, math-verify could only add its own rounding.
        return _verdict(numbers_match(a, b), "numeric")
    if _canon(cp) == _canon(cg):
        return EquivResult(True, "match", "string")
    decided = _equations(cp, cg, timeout)
    if decided is not None:
        return decided
    if _case_clash(pred, gold):
        return _verdict(False, "string")
    status, _ = symbolic.check(_math(gold), _math(pred), timeout)
    return EquivResult(status == "match", status, "symbolic")


def is_equiv(pred: str, gold: str, timeout: float = 5.0) -> bool:
    """True if `pred` states the same answer as `gold`.

    Numbers are read exactly (`1,000`, `$18`, `\\$18`, `18%`, `18.0`, `5 cm`, `x = 3`, `\\frac12`, `\\dfrac{1}{2}`,
    `1/2`, `1.5e3`) and compared to the precision the gold is written with (`numeric.numbers_match`): an integer
    gold needs the exact value, a decimal gold agreement to its stated digits. A percent sign is dropped, not
    divided: `18%` == `18` but != `0.18`. Equations compare as equations (`equation`): `x = 3` answers `3`, `2x = 6`
    does not. Clock times compare as times. Anything else is compared as normalised text (case folded only for
    prose words), then by math-verify (`verify(parse(gold), parse(pred))`, gold first as it is asymmetric) in a
    child process killed after `timeout` seconds, which counts as not equal. Safe to call from any thread.
    """
    return check(pred, gold, timeout).equal
