r"""Grade a completion against a gold answer: extract the final answer, parse the gold, compare.

Rules
-----
1. Gold: `parse_gold(gold, bench)`. Each bench's own format first (GSM8K's `#### N` tail, MATH's last `\boxed{}`,
   GSM-Hard's float target, SVAMP/ASDiv's number with its unit dropped), then a bare answer as given ("42",
   "x = 3", "Mrs. Hilt", "5:45") for every bench. A gold that cannot be read is never right or wrong:
   `grade_detailed` returns `correct=None` ("gold_unparseable") so an evaluation counts it apart, and `grade`,
   which promises a bool, raises `GoldUnparseableError` (a ValueError) naming the gold and bench.
2. Prediction, in order of evidence: the last `\boxed{}`/`\fbox{}`; else the last `#### N`; else the last
   explicit statement ("the (final) answer is X", "answer: X", or a correction of one such as "Wait, no, it's 5";
   the last one stated counts, because the model's final word is its answer); else the last number in the text.
   A box outranks any later prose, so "\boxed{4}. Wait, no, it's 5" grades 4. A remark is not a statement
   ("Wait, that's correct", "No, it's not 20", "the answer is correct"). Nothing found: wrong ("no_answer").
3. Equivalence: `is_equiv(pred, gold)`. Numbers are read exactly (commas, `$`, `%`, units, `\frac`, `a/b`,
   scientific notation) and compared to the precision the gold is written with: an integer gold needs the exact
   value, a decimal gold agreement to its stated digits, a program's float (GSM-Hard) its value up to float noise
   or rounded to two or more decimals. Equations compare as equations: `x = 3` answers 3, `2x = 6` does not.
   Other answers compare as normalised text (case folded only for prose words), then symbolically by math-verify
   (intervals, tuples, sets, matrices, radicals, pi, expressions, equations), with a hard timeout; a timeout
   grades wrong and is reported as "timeout".

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


class GoldUnparseableError(ValueError):
    """`grade()` was given a gold answer it cannot read; use `grade_detailed` to count such rows apart."""


@dataclass(frozen=True)
class GradeResult:
    """One graded completion: verdict (None when gold is unreadable), what was compared, and why."""

    correct: bool | None
    extracted: str | None
    gold: str | None
    rule: str  # extraction rule: "boxed" | "hash" | "answer_is" | "last_number" | "none"
    reason: str  # "match" | "mismatch" | "no_answer" | "gold_unparseable" | "timeout" | "error"
    method: str = ""  # equivalence path: "numeric" | "string" | "symbolic" | "empty"; "" when not compared


def _check_text(completion: object) -> str:
    if not isinstance(completion, str):
        kind = type(completion).__name__
        raise TypeError(f"completion must be a str (the model's text), got {kind}: {completion!r:.60}")
    return completion


def grade_detailed(
    completion: str, gold: str | float | None, bench: str = "auto", timeout: float = 5.0
) -> GradeResult:
    """Grade `completion` against a raw or bare `gold`, with the extracted answer and the reason."""
    extraction = extract_answer(_check_text(completion))
    parsed = parse_gold(gold, bench)
    if parsed is None:
        return GradeResult(None, extraction.answer, None, extraction.rule, "gold_unparseable")
    if extraction.answer is None:
        return GradeResult(False, None, parsed, extraction.rule, "no_answer")
    result = check(extraction.answer, parsed, timeout)
    return GradeResult(result.equal, extraction.answer, parsed, extraction.rule, result.status, result.method)


def grade(completion: str, gold: str | float, bench: str = "auto") -> bool:
    """True if the completion's final answer equals the gold; raises GoldUnparseableError if the gold is unreadable."""
    result = grade_detailed(completion, gold, bench)
    if result.correct is None:
        raise GoldUnparseableError(
            f"gold answer {gold!r:.80} cannot be read with bench={bench!r} (expected a bare answer or the bench's "
            "own format, e.g. GSM8K's '#### N' or MATH's \\boxed{}); grade_detailed() returns correct=None for it"
        )
    return result.correct
