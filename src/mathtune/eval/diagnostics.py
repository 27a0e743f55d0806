"""Reasoning diagnostics: how a completion reasons (doubt, repetition, loops, answer flips), not just its answer.

`diagnose(completion)` returns one JSON-able dict per completion; `aggregate(diags)` summarises a run.
Pure Python; every pass is linear in the text so a 100k-character runaway completion costs milliseconds.

Fields of `diagnose`:
    num_tokens             the count given, else whitespace words (see diagnose)
    num_answers            explicit answer statements (`stated_answers`: boxes, `#### N`, "the answer is", corrections)
    doubt_markers          occurrences of DOUBT_MARKERS; doubt_per_1k_tokens is that per 1000 num_tokens
    repeated_3gram_ratio   share of word 3-grams (case-folded) repeating an earlier one; 0.0 under 3 words
    answer_flips           consecutive stated answers that the grader says differ
    loop                   ends in a degenerate repetition (LOOP_* constants)
    first_correct_position index into the stated answers of the first one equal to gold (None: no gold, or never)
    last_stated_correct    the last stated answer equals gold (None without gold)
    abandoned_correct      a correct answer was stated, then a different one last (None without gold)
    grader_capped          MAX_SYMBOLIC_CALLS ran out, so some comparisons were by normalised text only
"""

from __future__ import annotations

import re
from functools import lru_cache
from statistics import fmean
from typing import Sequence

from mathtune.answers.equiv import check
from mathtune.answers.extract import stated_answers
from mathtune.eval.metrics import normalise_answer

# Reflection / self-doubt phrases, matched case-insensitively on word boundaries; each occurrence counts once
# ("Wait, no," is two markers). Plain phrases so a reader can see exactly what is counted; spaces match any
# whitespace and an apostrophe also matches the typographic one.
DOUBT_MARKERS: tuple[str, ...] = (
    "wait",
    "hmm",
    "hmmm",
    "no,",
    "actually,",
    "oops",
    "let me re-check",
    "let me recheck",
    "let me double-check",
    "let me double check",
    "let me check again",
    "let me verify",
    "let me reconsider",
    "re-evaluate",
    "reevaluate",
    "re-examine",
    "I made a mistake",
    "I made an error",
    "on second thought",
    "that's not right",
    "that is not right",
    "that can't be right",
    "that doesn't seem right",
)

# Loop detection ("ends in a repeated span"); three independent signals, any one flags the completion.
# 1) Exact: after lower-casing and collapsing whitespace, the text ends in a span with period p <= LOOP_MAX_PERIOD_CHARS
#    repeated at least LOOP_MIN_REPEATS times and covering at least LOOP_MIN_SPAN_CHARS ("...", "ab ab ab" are fine;
#    "wait, no... " x3 is not). A cut-off last repeat still counts, as generations stop mid-loop at max_tokens.
LOOP_MIN_REPEATS = 3
LOOP_MIN_SPAN_CHARS = 30
LOOP_MAX_PERIOD_CHARS = 1000
# 2) Near-repeats (sampled loops vary a number or a word per cycle): within the last LOOP_TAIL_WORDS words at least
#    LOOP_TAIL_RATIO of word 3-grams repeat an earlier one. Healthy reasoning stays well under it; a loop whose cycle is
#    u words scores about 1 - u / LOOP_TAIL_WORDS. Only the tail is measured, so a long healthy start cannot dilute a
#    loop at the end; completions shorter than the window rely on signal 1.
LOOP_TAIL_WORDS = 300
LOOP_TAIL_RATIO = 0.5
# 3) Template loops (greedy small models on word problems): the same sentence again and again with new numbers
#    ("They have 560+40=600 coins.\nThey have 10*600=6000 coins.\n..."), which is neither exactly periodic nor, within
#    a few hundred tokens, long enough for signal 2. With every run of digits read as one symbol, the text ends in a
#    span repeated at least TEMPLATE_MIN_REPEATS times covering at least TEMPLATE_MIN_SPAN_CHARS. Set from the
#    GSM8K headline run's completions (benchmarks/results/gsm8k_default/): five repeats of a 30-character sentence
#    at least, so short legitimate chains ("60-10=50, 50-10=40, 40-10=30") stay unflagged. This is also the rule that
#    `eval.stop_on_loop` ends a generation on (eval/generate.py).
TEMPLATE_MIN_REPEATS = 5
TEMPLATE_MIN_SPAN_CHARS = 150
_DIGITS = re.compile(r"\d+")

# A symbolic grader check costs 20-50 ms (math-verify in a child process), and a runaway completion can state
# thousands of different answers. Numeric and textual checks are cheap and never capped; after this many symbolic
# ones, answers count as equal only if they match after light normalisation, and `grader_capped` says so.
MAX_SYMBOLIC_CALLS = 16


@lru_cache(maxsize=8)
def _marker_regex(markers: tuple[str, ...]) -> re.Pattern[str]:
    """One alternation of all markers, longest first so a phrase wins over a marker it contains."""
    parts = []
    for phrase in sorted(markers, key=len, reverse=True):
        body = r"\s+".join(re.escape(w) for w in phrase.split()).replace("'", "['\u2019]")
        parts.append(r"\b" + body + (r"\b" if phrase[-1].isalnum() else ""))
    return re.compile("|".join(parts), re.IGNORECASE)


def count_doubt_markers(text: str, markers: Sequence[str] = DOUBT_MARKERS) -> int:
    """Number of doubt-marker occurrences in `text` (non-overlapping, case-insensitive, word-bounded)."""
    return sum(1 for _ in _marker_regex(tuple(markers)).finditer(text))


def repeated_ngram_ratio(words: Sequence[str], n: int = 3) -> float:
    """Share of word n-grams that repeat an earlier n-gram of the same sequence (0.0 when there are none)."""
    grams = list(zip(*(words[i:] for i in range(n))))
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def _ends_periodic(text: str, min_repeats: int = LOOP_MIN_REPEATS, min_span: int = LOOP_MIN_SPAN_CHARS) -> bool:
    """True when the normalised text ends in an exactly repeated span (loop signal 1)."""
    # The leading space lets a loop that starts the text match its first cycle like the later ones.
    t = " " + " ".join(text.lower().split())
    for p in range(1, LOOP_MAX_PERIOD_CHARS + 1):
        span = max(min_repeats * p, min_span)
        if span > len(t):
            break
        # A suffix of length `span` has period p iff it equals itself shifted by p: one C-level compare per p.
        if t[len(t) - span : len(t) - p] == t[len(t) - span + p :]:
            return True
    return False


def ends_in_template_loop(text: str) -> bool:
    """True when, numbers aside, the text ends in one sentence repeated (loop signal 3, TEMPLATE_* constants)."""
    return _ends_periodic(_DIGITS.sub("0", text), TEMPLATE_MIN_REPEATS, TEMPLATE_MIN_SPAN_CHARS)


def ends_in_loop(text: str, words: Sequence[str] | None = None) -> bool:
    """True when the completion ends in a degenerate repetition; thresholds are the module's LOOP_* constants."""
    if _ends_periodic(text) or ends_in_template_loop(text):
        return True
    words = [w.lower() for w in (text.split() if words is None else words)[-LOOP_TAIL_WORDS:]]
    return len(words) >= LOOP_TAIL_WORDS and repeated_ngram_ratio(words) >= LOOP_TAIL_RATIO


class _Grader:
    """The grader with a cache and a cap on symbolic checks, shared by every comparison of one completion."""

    def __init__(self, max_symbolic: int):
        self.symbolic_left = max_symbolic
        self.capped = False
        # Looping completions restate the same few answers hundreds of times; each pair is graded once.
        self.cache: dict[tuple[str, str], bool] = {}

    def __call__(self, pred: str, gold: str) -> bool:
        key = (pred, gold)
        if key not in self.cache:
            if normalise_answer(pred) == normalise_answer(gold):
                self.cache[key] = True
            elif self.symbolic_left > 0:
                result = check(pred, gold)
                self.symbolic_left -= result.method == "symbolic"
                self.cache[key] = result.equal
            else:
                self.capped = True
                self.cache[key] = False
        return self.cache[key]


def diagnose(
    completion: str, num_tokens: int | None = None, gold: str | None = None, max_symbolic: int = MAX_SYMBOLIC_CALLS
) -> dict:
    """Per-completion reasoning diagnostics as a JSON-able dict; the fields are listed in the module docstring."""
    words = completion.split()
    # Without the tokenizer's count, whitespace words stand in for tokens: they undercount subword tokens (by about a
    # third on math text), so compare doubt_per_1k_tokens only between runs that counted the same way.
    tokens = len(words) if num_tokens is None else num_tokens
    doubts = count_doubt_markers(completion)
    answers = stated_answers(completion)
    same = _Grader(max_symbolic)
    first_correct = last_correct = abandoned = None
    if gold is not None:  # before the flips, so a capped grader is spent on correctness first
        last_correct = bool(answers) and same(answers[-1], gold)
        first_correct = next((i for i, a in enumerate(answers) if same(a, gold)), None)
        abandoned = first_correct is not None and not last_correct
    # Consecutive statements are compared with the grader, so "0.5" then "1/2" is a restatement, not a flip.
    flips = sum(not same(cur, prev) for prev, cur in zip(answers, answers[1:]))
    return {
        "num_tokens": tokens,
        "num_answers": len(answers),
        "doubt_markers": doubts,
        "doubt_per_1k_tokens": 1000.0 * doubts / tokens if tokens else 0.0,
        "repeated_3gram_ratio": repeated_ngram_ratio([w.lower() for w in words]),
        "answer_flips": flips,
        "loop": ends_in_loop(completion, words),
        # None without gold, or when no stated answer matched it.
        "first_correct_position": first_correct,
        "last_stated_correct": last_correct,
        # Stated a correct answer, then ended on another one: the "talked itself out of it" failure.
        "abandoned_correct": abandoned,
        "grader_capped": same.capped,
    }


MEAN_FIELDS = (
    "num_tokens",
    "num_answers",
    "doubt_markers",
    "doubt_per_1k_tokens",
    "repeated_3gram_ratio",
    "answer_flips",
)


def aggregate(diags: Sequence[dict]) -> dict:
    """Summary of many `diagnose` results: field means, loop/flip/no-answer shares and, with gold, correctness paths."""
    out: dict = {"n": len(diags)}
    if not diags:
        return out
    for key in MEAN_FIELDS:
        out[f"mean_{key}"] = fmean(d[key] for d in diags)
    out["loop_rate"] = fmean(bool(d["loop"]) for d in diags)
    out["flip_rate"] = fmean(d["answer_flips"] >= 1 for d in diags)
    out["no_answer_rate"] = fmean(d["num_answers"] == 0 for d in diags)
    out["grader_capped_rate"] = fmean(bool(d["grader_capped"]) for d in diags)
    graded = [d for d in diags if d["last_stated_correct"] is not None]
    out["n_with_gold"] = len(graded)
    if graded:
        reached = [d["first_correct_position"] for d in graded if d["first_correct_position"] is not None]
        out["reached_correct_rate"] = len(reached) / len(graded)
        out["abandoned_correct_rate"] = fmean(bool(d["abandoned_correct"]) for d in graded)
        out["mean_first_correct_position"] = fmean(reached) if reached else None
    return out
