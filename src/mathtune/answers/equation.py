r"""Answers that are equations: split `lhs = rhs` at top level, and tell an assignment (`x = 3`) from a real equation.

The rule the grader follows (issue 16): an equation is compared as an equation. Against a gold that is not an
equation it counts only when it *states the value*: a single variable on the left (`x = 3`, `\theta = \pi/2`, `y_1 = 4`)
or a chain of plain arithmetic (`3 + 5 = 8`, which a model writes when it shows its last step). `2x = 6` or
`5x - 7y + 11z + 4 = 0` is not the value 6 or 0.
"""

from __future__ import annotations

import re

# `=` that is not part of `<=`, `>=`, `!=`, `==`; LaTeX relations (\leq, \neq ...) are words, so never split on.
_EQ_RE = re.compile(r"(?<![<>!=])=(?!=)|\\approx(?![A-Za-z])|\u2248")
_VARIABLE_RE = re.compile(
    r"(?:[A-Za-z]|\\(?:alpha|beta|gamma|delta|theta|lambda|mu|phi|psi|omega|sigma|tau|rho|varphi|epsilon))"
    r"(?:_\{?[A-Za-z0-9]{1,4}\}?)?'?"
)
_ARITHMETIC_RE = re.compile(r"(?:[\d\s.,+\-*/()^{}\u00d7\u00f7\u2212]|\\(?:times|cdot|div|d?frac)(?![A-Za-z]))+")


def _depths(text: str) -> list[int]:
    """Bracket depth at each position, in one pass ((), [], {}; an unbalanced text gives what it can)."""
    depth, out = 0, []
    for c in text:
        if c in ")]}":
            depth = max(0, depth - 1)
        out.append(depth)
        if c in "([{":
            depth += 1
    return out


def sides(text: str) -> list[str] | None:
    """`a = b = c` -> ["a", "b", "c"] when the text is one equation (chain); None when it is not an equation.

    A top-level comma means a list ("x=1, x=2" is two solutions), which is left to math-verify whole.
    """
    if "=" not in text and "approx" not in text and "\u2248" not in text:
        return None
    depth = _depths(text)
    if any(c in ",;" and depth[i] == 0 for i, c in enumerate(text)):
        return None
    marks = [m for m in _EQ_RE.finditer(text) if depth[m.start()] == 0]
    if not marks:
        return None
    parts, last = [], 0
    for m in marks:
        parts.append(text[last : m.start()].strip())
        last = m.end()
    parts.append(text[last:].strip())
    return parts if all(parts) else None


def is_variable(side: str) -> bool:
    """True for a single variable name: `x`, `y_1`, `\\theta`, `a_{n}`."""
    return _VARIABLE_RE.fullmatch(side.replace(" ", "")) is not None


def is_arithmetic(side: str) -> bool:
    """True for plain arithmetic on numbers (`3 + 5`, `48/2`, `2 \\times 7`), no variables."""
    return _ARITHMETIC_RE.fullmatch(side.strip()) is not None and any(c.isdigit() for c in side)


def stated_value(text: str) -> str | None:
    """The value an equation states: the last side of `x = 3` or `3 + 5 = 8`; None for any other equation."""
    parts = sides(text)
    if parts is None:
        return None
    lhs = parts[0]
    if is_variable(lhs) or all(is_arithmetic(p) for p in parts[:-1]):
        return parts[-1]
    return None
