"""GSM8K's calculator (Cobbe et al. 2021, sec. 3.1): when the model writes `<<48/2=`, the tool writes `24>>`.

GSM8K's worked solutions carry their arithmetic as calculator notes (`48/2 = <<48/2=24>>24`). A model trained on
them (`{source: gsm8k, calculator_notes: true}`) opens a note, writes the expression and `=`; with
`eval.calculator: true` decoding then stops choosing tokens and feeds the value and `>>` instead, so the number the
model copies after the note is right even where its own arithmetic would not be. The protocol is the GSM8K paper's
own; scores with it are a separate row, never compared with tool-free leaderboard numbers.

Written here because no library of the stack intervenes in decoding this way (transformers' `generate` can only
stop or mask, not insert tokens); `eval/continuous.py` feeds the inserted tokens one decode step each.
"""

from __future__ import annotations

import ast
import operator
import re
from typing import Any, Callable

OPEN, CLOSE = "<<", ">>"
NOTE_RE = re.compile(r"<<([0-9.+\-*/() ]+)=$")  # an open note ending in `=`: GSM8K's notes use only these
DECIMALS = 4  # GSM8K's notes show at most 2-3 decimals; 4 keeps 1/3 useful without a string of digits
MAX_ABS = 1e15  # larger values (or a huge power) are left to the model: no note in GSM8K comes near
TAIL_TOKENS = 48  # decoded to find the note's start: GSM8K's longest note is far shorter

_OPS: dict[type, Callable[..., float]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.USub: operator.neg, ast.UAdd: operator.pos,
}


def evaluate(expression: str) -> float | None:
    """The value of an arithmetic expression of numbers, + - * / and parentheses; None where it has none."""
    try:
        tree = ast.parse(expression.strip(), mode="eval").body
        value = _value(tree)
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, RecursionError):
        return None
    return value if abs(value) < MAX_ABS else None


def _value(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_value(node.left), _value(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_value(node.operand))
    raise ValueError("not plain arithmetic")


def show(value: float) -> str:
    """A value as GSM8K's notes write it: `24`, `2.5`, `0.3333` (no exponent, no trailing zeros)."""
    text = f"{round(value, DECIMALS):.{DECIMALS}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def answer_note(text: str) -> str | None:
    """What the calculator writes after `text`, when `text` ends in an open note `<<EXPR=`; else None."""
    match = NOTE_RE.search(text)
    if match is None:
        return None
    value = evaluate(match.group(1))
    return None if value is None else show(value) + CLOSE


def calculator_tokens(ids: list[int], tokenizer: Any) -> list[int]:
    """The ids to insert after the generated `ids` (the value and `>>`), or [] when no note is waiting for one."""
    if not ids or not tokenizer.decode(ids[-1:], skip_special_tokens=True).endswith("="):
        return []  # the common case, at the cost of decoding one token
    note = answer_note(tokenizer.decode(ids[-TAIL_TOKENS:], skip_special_tokens=True))
    return [] if note is None else tokenizer(note, add_special_tokens=False)["input_ids"]


def count_notes(text: str) -> int:
    """How many calculator notes a completion holds (opened and closed)."""
    return len(re.findall(r"<<[^<>\n]*>>", text))
