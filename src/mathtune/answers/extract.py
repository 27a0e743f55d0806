"""Find the final answer a completion states: boxed, `#### N`, "the answer is X", or the last number.

A correction ("Wait, no, it's 5", "Actually, it should be 5") counts as a statement only after an earlier one, so
mid-derivation chatter is not read as an answer; within "the answer is" statements the last one wins.

Every pattern here is linear in the text length (bounded repeats, no nested quantifiers), because completions
from a looping model can be 100k characters long and the grader runs on every one of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
# `####` must be followed by something number-like: a markdown heading ("#### Step 2") is not an answer.
_HASH_RE = re.compile(r"####[ \t]{0,8}([^\n]*)")
_HASH_START_RE = re.compile(r"(?:\\?\$)?[ \t]?[-+\u2212]?[ \t]?(?:\d|\.\d|\\[dt]?frac)")
_ANSWER_IS_RE = re.compile(
    r"\b(?:the[ \t]{1,4})?(?:final[ \t]{1,4})?answer[ \t]{1,4}(?:is|would[ \t]be|should[ \t]be)\b[ \t]{0,4}:?"
    r"|\b(?:final[ \t]{1,4})?answer[ \t]{0,4}:",
    re.IGNORECASE,
)
# A correction of an answer already stated: "Wait, no, it's 5", "Actually, it should be 5".
_RESTATE_RE = re.compile(
    r"\b(?:wait|no|actually|oops|sorry|correction)\b[ \t,.!:\-]{0,6}"
    r"(?:(?:no|actually|sorry)\b[ \t,.!:\-]{0,6})?"
    r"(?:it['\u2019]s|it[ \t]is|it[ \t]should[ \t]be|that['\u2019]s|make[ \t]that)[ \t]{1,4}",
    re.IGNORECASE,
)
_NUMBER_RE = re.compile(
    r"[-\u2212]?(?:\d+(?:,\d{3}(?!\d))*(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d{1,4}(?!\d))?(?:/\d+(?!\d|\.\d))?"
)
# A sentence ends at . ! ? ; before a space, but not at LaTeX's `\!` (thin space, "11,\! 111") nor after an
# abbreviation ("Mrs. Hilt", "5 a.m. sharp") or a decimal point.
_SENTENCE_END_RE = re.compile(  # the mark first, then look back: lookbehinds up front would run at every position
    r"[.!?;](?=\s|$)(?<!\\[.!?;])(?<!\bMr\.)(?<!\bMrs\.)(?<!\bMs\.)(?<!\bDr\.)(?<!\bSt\.)(?<!\bJr\.)"
    r"(?<!\bSr\.)(?<!\bvs\.)(?<!\betc\.)(?<!\b[ap]\.m\.)"
)
_COMMA_RE = re.compile(r",(?=\s)")
# After ", " a list goes on (another number, symbol or math, or "and X" closing it) and the phrase is not cut:
# "3, 5, 7", "1, 2, and 3"; "18, and 18 + 2 = 20" is prose after the answer.
_LIST_GOES_ON_RE = re.compile(
    r",\s{1,4}(?:(?:and|or)\s{1,4}[^\s,]{1,24}\s*$|[-+\u2212$\\(\[{\d]|[A-Za-z](?=\s*(?:[,=)\]]|$)))"
)
# What a correction restates must look like an answer: "Wait, no, it's 5" yes; "Wait, that's correct" or
# "No, it's not 20" are remarks, not answers.
_ANSWERISH_RE = re.compile(r"[ \t*]*(?:\\?\$|\\[(\[]|\\[A-Za-z]|[-+\u2212]?\.?\d|[(\[{]|[A-Za-z]\s{0,2}(?:=|[.,]|$))")
# "The answer is correct/wrong/not ..." judges an answer; it does not state one.
_REMARK_RE = re.compile(
    r"(?:not|correct|incorrect|right|wrong|indeed|confirmed|verified|consistent|reasonable|valid|invalid|"
    r"clear|obvious|the\s+same|unchanged)\b", re.IGNORECASE
)
_CLAUSE_WORDS = (" because ", " since ", " which ", " so that ", " as it ")
_MAX_STATEMENT = 300  # longest answer phrase kept after "the answer is"; real answers are far shorter


@dataclass(frozen=True)
class Extraction:
    """The answer found in a completion and which rule found it."""

    answer: str | None
    rule: str  # "boxed" | "hash" | "answer_is" | "last_number" | "none"


def _brace_pairs(text: str) -> dict[int, int]:
    """Index of each `{` -> index of its matching `}`, in one pass (unclosed ones are absent)."""
    pairs, stack = {}, []
    for m in re.finditer(r"[{}]", text):
        if m.group() == "{":
            stack.append(m.start())
        elif stack:
            pairs[stack.pop()] = m.start()
    return pairs


def _box_at(text: str, m: re.Match[str], pairs: dict[int, int]) -> tuple[str, int] | None:
    """Content and end index of the box command matched by `m` (`\\boxed{..}` or `\\boxed 5`)."""
    i = m.end()
    while i < len(text) and text[i] in " \t":
        i += 1
    if i < len(text) and text[i] == "{":
        close = pairs.get(i)
        return (text[i + 1 : close], close + 1) if close is not None else None
    if i == m.end():  # "\boxedx" is not a box; "\boxed x" is
        return None
    j = i
    while j < len(text) and not text[j].isspace() and text[j] not in "$.,;":
        j += 1
    return (text[i:j], j) if j > i else None


def _boxes(text: str) -> list[tuple[int, int, str]]:
    """Every box as (start, end, stripped content), in order."""
    out, pairs = [], _brace_pairs(text) if "{" in text else {}
    for m in _BOX_RE.finditer(text):
        got = _box_at(text, m, pairs)
        if got is not None:
            out.append((m.start(), got[1], got[0].strip()))
    return out


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}`/`\\fbox{...}` (nested braces kept), or None."""
    matches = list(_BOX_RE.finditer(text))
    # Brace matching scans the whole text; a precomputed table keeps many unclosed boxes linear, not quadratic.
    pairs = _brace_pairs(text) if matches else {}
    for m in reversed(matches):
        got = _box_at(text, m, pairs)
        if got is not None:
            return got[0].strip()
    return None


def _closing(text: str, close: str, start: int, end: int) -> int:
    """Index of the delimiter closing a math span, skipping escaped dollars (`$\\$18$`); -1 if none before `end`."""
    at = text.find(close, start, end)
    while at > 0 and close == "$" and text[at - 1] == "\\":
        at = text.find(close, at + 1, end)
    return at


def _phrase(text: str, start: int) -> tuple[str, int]:
    """The answer phrase starting at `start`: up to the sentence end, math delimiters honoured."""
    while start < len(text) and text[start] in " \t*":
        start += 1
    line_end = text.find("\n", start)
    end = min(len(text) if line_end < 0 else line_end, start + _MAX_STATEMENT)
    for open_, close in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if text.startswith(open_, start):
            close_at = _closing(text, close, start + len(open_), end)
            if close_at > 0:
                return text[start + len(open_) : close_at].strip(), close_at + len(close)
            break
    phrase = text[start:end]
    stop = _SENTENCE_END_RE.search(phrase)
    if stop:
        phrase = phrase[: stop.start()]
    for comma in _COMMA_RE.finditer(phrase):
        # A comma ends the phrase only outside brackets, so tuples and intervals "(1, 2)" stay whole, and only
        # where prose follows, so a list "3, 5, 7" stays whole too.
        head = phrase[: comma.start()]
        if sum(head.count(c) for c in "([{") <= sum(head.count(c) for c in ")]}"):
            if _LIST_GOES_ON_RE.match(phrase, comma.start()):
                continue
            phrase = head
            break
    for word in _CLAUSE_WORDS:
        cut = phrase.find(word)
        if cut >= 0:
            phrase = phrase[:cut]
    return phrase.strip().strip("*").rstrip(".").strip(), start + len(phrase)


def _skip_blank(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t*:":
        i += 1
    return i


def _statements(text: str) -> list[tuple[int, int, str, str]]:
    """Every explicit answer statement as (start, end, answer, rule), in order, nested ones deduplicated."""
    found = [(s, e, a, "boxed") for s, e, a in _boxes(text)]
    for m in _HASH_RE.finditer(text):
        if _HASH_START_RE.match(m.group(1)):
            found.append((m.start(), m.end(), m.group(1).strip().rstrip("."), "hash"))
    for m in _ANSWER_IS_RE.finditer(text):
        if _REMARK_RE.match(text, _skip_blank(text, m.end())):
            continue
        phrase, end = _phrase(text, m.end())
        found.append((m.start(), end, phrase, "answer_is"))
    found.sort()
    first = found[0][0] if found else len(text)
    # A correction only counts once something was stated, so "no, it's 3+5" mid-derivation is not an answer.
    for m in _RESTATE_RE.finditer(text, first + 1):
        if not _ANSWERISH_RE.match(text, m.end()) or _REMARK_RE.match(text, _skip_blank(text, m.end())):
            continue
        phrase, end = _phrase(text, m.end())
        found.append((m.start(), end, phrase, "answer_is"))
    found.sort()
    # "The answer is \boxed{5}" and "Final Answer: The final answer is $5$" are one statement, kept as the inner one.
    kept = []
    for i, st in enumerate(found):
        nxt = found[i + 1] if i + 1 < len(found) else None
        if st[2] and not (nxt is not None and nxt[2] and st[0] <= nxt[0] < st[1]):
            kept.append(st)
    return kept


def stated_answers(text: str) -> list[str]:
    """Every explicit answer statement in order: box, `#### N`, "the answer is X", "answer: X", "wait, no, it's X"."""
    return [answer for _, _, answer, _ in _statements(text)]


def last_number(text: str) -> str | None:
    """The last number in the text (commas, decimals, sign, `a/b` and `1e5` kept), or None."""
    last = None
    for last in _NUMBER_RE.finditer(text):
        pass
    return last.group(0).replace("\u2212", "-") if last else None


def extract_answer(text: str) -> Extraction:
    """The final answer: last box, else last `#### N`, else last "the answer is", else the last number."""
    statements = _statements(text)
    for rule in ("boxed", "hash", "answer_is"):
        answers = [a for _, _, a, r in statements if r == rule]
        if answers:
            return Extraction(answers[-1], rule)
    number = last_number(text)
    return Extraction(number, "last_number") if number is not None else Extraction(None, "none")
