r"""Grade a completion against a gold answer: extract the final answer, parse the gold, compare.

Rules
-----
1. Gold: `parse_gold(gold, bench)`. GSM8K's `#### N` tail, MATH's last `\boxed{}`, GSM-Hard's float target,
   SVAMP/ASDiv's number with its unit dropped, or a bare answer as given; "auto" picks by content, so both a
   whole GSM8K answer field and a bare "18" work. A gold that cannot be read grades as `None` ("gold_unparseable"),
   never as right or wrong: count those apart.
2. Prediction, in order of evidence: the last `\boxed{}`/`\fbox{}`; else the last `#### N`; else the last
   explicit statement ("the (final) answer is X", "answer: X", or a correction of one such as "Wait, no, it's 5";
   the last one stated counts, because the model's final word is its answer); else the last number in the text.
   A box outranks any later prose, so "\boxed{4}. Wait, no, it's 5" grades 4. Nothing found: wrong ("no_answer").
3. Equivalence: `is_equiv(pred, gold)`. Numbers are read exactly with commas, `$`, `%`, units, trailing `.0`,
   `x =` prefixes, `\frac`, `a/b` and scientific notation understood; integers must be equal, other numbers
   within a relative 1e-4. Non-numbers are compared as normalised text, then symbolically by math-verify
   (intervals, tuples, sets, matrices, radicals, pi, expressions), with a hard timeout; a timeout grades wrong
   and is reported as "timeout".

How this differs from lm-eval's GSM8K filters
---------------------------------------------
Both lm-eval filters end in `exact_match` on strings, ignoring case, commas, `$` and a trailing period.
- strict-match takes the *first* `#### (\-?[0-9\.\,]+)`: "#### 18.0" against gold "18" scores wrong (string
  "18.0" != "18"), "#### $18" is not matched at all (the `$` comes before the digits), and a boxed answer or
  "The answer is 18" without `####` scores wrong. Here all are right, and the *last* `####` counts.
- flexible-extract takes the last match of `(-?[$0-9.,]{2,})|(-?[0-9]+)` anywhere: "The answer is 18. Check:
  18 + 2 = 20." reads 20 and scores wrong; "\frac{1}{2}" or "1/2" against "0.5" fails. Here an explicit answer
  statement outranks stray later numbers, and values are compared, not strings; the last number is only the
  fallback when nothing is stated.
- Neither handles LaTeX answers (MATH-style); here they go through math-verify.
So scores here are usually a little higher than strict-match and differ from flexible-extract in both directions;
report which grader produced a number.
"""

from __future__ import annotations

from dataclasses import dataclass

from mathtune.answers.equiv import check
from mathtune.answers.extract import extract_answer
from mathtune.answers.gold import parse_gold


@dataclass(frozen=True)
class GradeResult:
    """One graded completion: verdict (None when gold is unreadable), what was compared, and why."""

    correct: bool | None
    extracted: str | None
    gold: str | None
    rule: str  # extraction rule: "boxed" | "hash" | "answer_is" | "last_number" | "none"
    reason: str  # "match" | "mismatch" | "no_answer" | "gold_unparseable" | "timeout" | "error"
    method: str = ""  # equivalence path: "numeric" | "string" | "symbolic" | "empty"; "" when not compared


def grade_detailed(completion: str, gold: str | float, bench: str = "auto", timeout: float = 5.0) -> GradeResult:
    """Grade `completion` against a raw or bare `gold`, with the extracted answer and the reason."""
    if not isinstance(completion, str):  # e.g. None from a failed generation: say which argument, not deep inside
        raise TypeError(f"grade: completion must be the model's text (a str), got {type(completion).__name__}")
    extraction = extract_answer(completion)
    parsed = parse_gold(gold, bench)
    if parsed is None:
        return GradeResult(None, extraction.answer, None, extraction.rule, "gold_unparseable")
    if extraction.answer is None:
        return GradeResult(False, None, parsed, extraction.rule, "no_answer")
    result = check(extraction.answer, parsed, timeout)
    return GradeResult(result.equal, extraction.answer, parsed, extraction.rule, result.status, result.method)


def grade(completion: str, gold: str | float, bench: str = "auto") -> bool:
    """True if the completion's final answer equals the gold answer (an unreadable gold counts as False)."""
    return grade_detailed(completion, gold, bench).correct is True
