r"""The field's graders, as pure functions, so a mathtune score can be put next to a leaderboard's.

- `lm_eval_strict` and `lm_eval_flexible`: lm-evaluation-harness's GSM8K filters (`lm_eval/tasks/gsm8k/gsm8k.yaml`,
  version 3.0), re-implemented from the published YAML rather than imported, because lm-eval is a large dependency
  (torch, datasets, evaluate, ...) for two regexes and a string comparison. strict-match takes the *first*
  `#### (\-?[0-9\.\,]+)`, flexible-extract the *last* match of `(-?[$0-9.,]{2,})|(-?[0-9]+)` (a tuple match keeps
  its non-empty group, then `.strip()`); no match gives lm-eval's "[invalid]". Both then score with lm-eval's
  `exact_match`: `regexes_to_ignore` [",", "\\$", "(?s).*#### ", "\\.$"] removed from prediction and reference,
  `ignore_case`, `ignore_punctuation=False`, string equality. Generation in lm-eval stops at "Question:", "</s>" and
  "<|im_end|>"; the completion is cut there first, so text a model goes on with after such a marker is not read.
- `math_verify_grade`: math-verify's own `verify(parse(gold), parse(completion))` on the whole completion with its
  default extraction, run in mathtune's worker pool with the same hard timeout as mathtune's own symbolic checks.

Each returns True/False, or None when the gold cannot be read (as `grade_detailed`). The reference for the regex
graders is the GSM8K answer field itself when it has a `####` line (as lm-eval passes it), else the parsed gold.
"""

from __future__ import annotations

import re

from mathtune.answers import symbolic
from mathtune.answers.gold import parse_gold
from mathtune.answers.numeric import read_number

STRICT_RE = re.compile(r"#### (\-?[0-9\.\,]+)")
FLEXIBLE_RE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
REGEXES_TO_IGNORE = (",", "\\$", "(?s).*#### ", "\\.$")
STOP_SEQUENCES = ("Question:", "</s>", "<|im_end|>")  # gsm8k.yaml generation_kwargs.until
FALLBACK = "[invalid]"
GRADERS = ("strict", "flexible", "math_verify")


def _until(completion: str) -> str:
    """The completion as lm-eval would have generated it: cut at the first stop sequence."""
    for stop in STOP_SEQUENCES:
        at = completion.find(stop)
        if at >= 0:
            completion = completion[:at]
    return completion


def _regex_filter(text: str, regex: re.Pattern[str], group_select: int) -> str:
    """lm-eval's `regex` filter: findall, pick one match, keep a tuple's non-empty group, strip; else "[invalid]"."""
    matches = regex.findall(text)
    if not matches:
        return FALLBACK
    match = matches[group_select]
    if isinstance(match, tuple):
        match = [m for m in match if m][0]
    return match.strip()


def _exact_match(prediction: str, reference: str) -> bool:
    """lm-eval's `exact_match` with the GSM8K task's options."""
    for pattern in REGEXES_TO_IGNORE:
        prediction = re.sub(pattern, "", prediction)
        reference = re.sub(pattern, "", reference)
    return prediction.lower() == reference.lower()


def _reference(gold: str | float | None, bench: str) -> str | None:
    parsed = parse_gold(gold, bench)
    if parsed is None:
        return None
    return gold if isinstance(gold, str) and "####" in gold else parsed


def strict_extract(completion: str, pattern: str | None = None) -> str:
    """What lm-eval's GSM8K strict-match filter extracts ("[invalid]" when nothing); `pattern` is the task's own
    regex where it differs (gsm8k_cot: "The answer is (\\-?[0-9\\.\\,]+).")."""
    return _regex_filter(_until(completion), re.compile(pattern) if pattern else STRICT_RE, 0)


def flexible_extract(completion: str) -> str:
    """What lm-eval's GSM8K flexible-extract filter extracts ("[invalid]" when nothing)."""
    return _regex_filter(_until(completion), FLEXIBLE_RE, -1)


def lm_eval_strict(
    completion: str, gold: str | float | None, bench: str = "auto", pattern: str | None = None
) -> bool | None:
    """lm-eval GSM8K strict-match: first `#### N` (or `pattern`), exact string match; None if the gold is unread."""
    reference = _reference(gold, bench)
    return None if reference is None else _exact_match(strict_extract(completion, pattern), reference)


def lm_eval_flexible(completion: str, gold: str | float | None, bench: str = "auto") -> bool | None:
    """lm-eval GSM8K flexible-extract: last number-like run, exact string match; None if the gold cannot be read."""
    reference = _reference(gold, bench)
    return None if reference is None else _exact_match(flexible_extract(completion), reference)


def _math_verify_gold(parsed: str) -> str:
    """The gold as math-verify is given it: one inline-math span; a plain number without thousands commas
    (math-verify reads "1,000" as the tuple (1, 000))."""
    number = read_number(parsed)
    text = parsed.replace("$", "")
    if number is not None and "," in text and "\\" not in text:
        text = text.replace(",", "")
    return f"${text}$"


def math_verify_grade(
    completion: str, gold: str | float | None, bench: str = "auto", timeout: float = 5.0
) -> bool | None:
    """math-verify's verify(parse(gold), parse(completion)), timeout-bounded; a timeout or error counts False."""
    parsed = parse_gold(gold, bench)
    if parsed is None:
        return None
    status, _ = symbolic.check(_math_verify_gold(parsed), completion, timeout)
    return status == "match"


def external_verdicts(
    completion: str, gold: str | float | None, bench: str = "auto", timeout: float = 5.0,
    strict_pattern: str | None = None,
) -> dict[str, bool | None]:
    """Every external grader's verdict on one completion: {"strict", "flexible", "math_verify"}; `strict_pattern`
    is the prompt set's strict-match regex when it is not GSM8K's `#### N` (few-shot gsm8k-cot)."""
    return {
        "strict": lm_eval_strict(completion, gold, bench, strict_pattern),
        "flexible": lm_eval_flexible(completion, gold, bench),
        "math_verify": math_verify_grade(completion, gold, bench, timeout),
    }
