"""Accuracy with honest uncertainty: Wilson intervals, pass@k, majority voting and paired model comparisons.

Pure Python + numpy. Every function takes per-item booleans (or answers) so the same code serves any task.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from statistics import NormalDist
from typing import Callable, Sequence

import numpy as np

from mathtune.eval.calculator import count_notes

# Below this many discordant pairs McNemar's chi-square approximation is poor, so the exact binomial test is used
# (the usual rule of thumb; statsmodels and most textbooks draw the line at about 25).
MCNEMAR_EXACT_BELOW = 25


@dataclass(frozen=True)
class Interval:
    """A proportion and its confidence interval over `n` graded items."""

    value: float
    low: float
    high: float
    n: int


@dataclass(frozen=True)
class BootstrapResult:
    """Mean paired difference (b - a), its percentile confidence interval and a two-sided p-value."""

    diff: float
    low: float
    high: float
    p_value: float
    n: int
    n_resamples: int


@dataclass(frozen=True)
class McNemarResult:
    """Discordant counts (b01: a wrong and b right; b10: a right and b wrong) and the test's outcome."""

    b01: int
    b10: int
    statistic: float | None  # chi-square statistic; None when the exact test was used
    p_value: float
    method: str  # "exact" or "chi2"


def accuracy_ci(correct: Sequence[bool | None], confidence: float = 0.95) -> Interval:
    """Accuracy with a Wilson score interval; None items (ungradable) are dropped, so the caller reports them."""
    # Wilson rather than the normal "p +- z*se" interval: it stays inside [0, 1], is not zero-width at 0% or 100%,
    # and keeps close to its nominal coverage at the small n of a benchmark subset (Brown, Cai & DasGupta 2001).
    graded = [bool(c) for c in correct if c is not None]
    n = len(graded)
    if n == 0:
        raise ValueError("accuracy_ci needs at least one graded (non-None) item")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    p = sum(graded) / n
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # At 0% and 100% the bound is exactly 0 or 1; pin it so float rounding does not print 2.8e-17.
    low = 0.0 if p == 0 else max(0.0, centre - half)
    high = 1.0 if p == 1 else min(1.0, centre + half)
    return Interval(value=p, low=low, high=high, n=n)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of Chen et al. 2021 from n samples of which c are correct: 1 - C(n-c, k) / C(n, k)."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got n={n}, k={k}")
    if n - c < k:  # every draw of k samples contains a correct one
        return 1.0
    # C(n-c, k) / C(n, k) as a product of ratios: the binomials themselves overflow floats for n in the hundreds.
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def mean_pass_at_k(per_problem: Sequence[Sequence[bool]], k: int) -> float:
    """Mean pass@k over problems, each given as its samples' correctness (n may differ between problems)."""
    if not per_problem:
        raise ValueError("mean_pass_at_k needs at least one problem")
    return sum(pass_at_k(len(s), sum(bool(x) for x in s), k) for s in per_problem) / len(per_problem)


def normalise_answer(answer: str) -> str:
    """Light normalisation for voting: drop all whitespace, surrounding `$` and a trailing full stop."""
    return re.sub(r"\s+", "", answer).strip("$").rstrip(".")


def answered(answer: str | None) -> bool:
    """Whether an extracted answer takes part in a vote: nothing found (None) or an empty one never does. The one
    rule for maj@k here, majority vote and the verifier's weighted vote (verifier/select.py)."""
    return answer is not None and answer.strip() != ""


def completion_rates(records: Sequence[dict]) -> dict[str, float | None]:
    """No-answer, truncation, loop-stop and calculator-note rates and mean tokens, each over every completion (all
    samples of every problem): the one definition the summary, `compare`, the plots and the GRPO report read. None when
    there are no records."""
    if not records:
        return {"no_answer_rate": None, "truncation_rate": None, "loop_stop_rate": None, "calculator_rate": None,
                "mean_tokens": None}
    n = len(records)
    return {
        "no_answer_rate": sum(r.get("reason") == "no_answer" for r in records) / n,
        "truncation_rate": sum(bool(r.get("truncated")) for r in records) / n,
        "loop_stop_rate": sum(bool(r.get("looped")) for r in records) / n,  # ended by eval.stop_on_loop
        # completions holding a closed `<<a*b=c>>` note: with eval.calculator, the ones the tool wrote into
        "calculator_rate": sum(count_notes(r.get("completion") or "") > 0 for r in records) / n,
        "mean_tokens": sum(r["num_tokens"] for r in records) / n,
    }


def _majority_index(answers: Sequence[str | None], equiv: Callable[[str, str], bool] | None) -> int | None:
    """Index of the first answer of the largest group; ties go to the group seen first."""
    reps: list[int] = []  # index of each group's first member
    counts: list[int] = []
    by_key: dict[str, int] = {}  # normalised answer -> group; exact matches never need an equiv call
    for i, ans in enumerate(answers):
        if not answered(ans):
            continue
        key = normalise_answer(ans)
        group = by_key.get(key)
        if group is None and equiv is not None:
            # Compared with each group's first member only: equivalence from a grader need not be transitive, and
            # anchoring on one member keeps groups stable and the call count at (answers x groups).
            group = next((g for g, r in enumerate(reps) if equiv(ans, answers[r])), None)  # type: ignore[arg-type]
        if group is None:
            group = len(reps)
            reps.append(i)
            counts.append(0)
        by_key[key] = group
        counts[group] += 1
    if not reps:
        return None
    best = max(range(len(reps)), key=lambda g: (counts[g], -reps[g]))
    return reps[best]


def majority_index(answers: Sequence[str | None], equiv: Callable[[str, str], bool] | None = None) -> int | None:
    """Index of the first member of the most common answer group (the vote of maj@k); None when none answered."""
    return _majority_index(answers, equiv)


def majority_vote(answers: Sequence[str | None], equiv: Callable[[str, str], bool] | None = None) -> str | None:
    """Most common answer (first-seen wins ties; unanswered ignored); pass `equiv=is_equiv` to group by the grader."""
    i = _majority_index(answers, equiv)
    return None if i is None else answers[i]


def maj_at_k(
    samples_answers: Sequence[Sequence[str | None]],
    samples_correct: Sequence[Sequence[bool | None]],
    k: int,
    equiv: Callable[[str, str], bool] | None = None,
) -> float:
    """Accuracy of the majority answer over each problem's first k samples (no answer or None grade = wrong)."""
    if len(samples_answers) != len(samples_correct):
        raise ValueError("samples_answers and samples_correct must have one entry per problem")
    if not samples_answers:
        raise ValueError("maj_at_k needs at least one problem")
    hits = 0
    for p, (answers, correct) in enumerate(zip(samples_answers, samples_correct)):
        if len(answers) != len(correct):
            raise ValueError(f"problem {p}: {len(answers)} answers but {len(correct)} grades")
        if len(answers) < k:
            raise ValueError(f"problem {p} has {len(answers)} samples, fewer than k={k}")
        i = _majority_index(answers[:k], equiv)
        # The winning group's first member stands for the group: its members are equivalent, so grade alike.
        hits += i is not None and bool(correct[i])
    return hits / len(samples_answers)


def _paired(a: Sequence[bool], b: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    """Both sequences as boolean arrays, checked to pair up item by item."""
    if len(a) != len(b):
        raise ValueError(f"paired comparison needs equal lengths, got {len(a)} and {len(b)}")
    if len(a) == 0:
        raise ValueError("paired comparison needs at least one item")
    if any(x is None for x in a) or any(x is None for x in b):
        # numpy would read None as False and quietly count ungradable items as wrong for one side.
        raise ValueError("paired comparison got None; drop items ungradable for either model first")
    return np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)


def paired_bootstrap(
    a: Sequence[bool], b: Sequence[bool], n_resamples: int = 10000, seed: int = 0, confidence: float = 0.95
) -> BootstrapResult:
    """Paired bootstrap of mean(b) - mean(a) over the same items: percentile CI and two-sided p-value."""
    xa, xb = _paired(a, b)
    n = len(xa)
    d = xb.astype(int) - xa.astype(int)
    observed = float(d.mean())
    # Per-item differences take only the values -1, 0, 1, so resampling n items with replacement is exactly a
    # multinomial draw of how many of each: same distribution as index resampling, O(n_resamples) memory.
    probs = [np.mean(d == -1), np.mean(d == 0), np.mean(d == 1)]
    counts = np.random.default_rng(seed).multinomial(n, probs, size=n_resamples)
    boot = (counts[:, 2] - counts[:, 0]) / n
    alpha = 1 - confidence
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    # Shift the bootstrap distribution to the null (Efron & Tibshirani 1993, ch. 16) and count resamples at least
    # as extreme as observed; the +1s keep p above 0, since finite resampling cannot show an exactly-zero p.
    extreme = int(np.sum(np.abs(boot - observed) >= abs(observed) - 1e-12))
    p = (extreme + 1) / (n_resamples + 1)
    return BootstrapResult(observed, float(low), float(high), min(1.0, p), n, n_resamples)


def mcnemar(a: Sequence[bool], b: Sequence[bool]) -> McNemarResult:
    """McNemar's test on paired correctness: exact binomial when discordant pairs are few, else corrected chi2."""
    xa, xb = _paired(a, b)
    b01 = int(np.sum(~xa & xb))
    b10 = int(np.sum(xa & ~xb))
    m = b01 + b10
    if m == 0:
        return McNemarResult(b01, b10, None, 1.0, "exact")
    if m < MCNEMAR_EXACT_BELOW:
        # Two-sided exact p: twice the smaller tail of Binomial(m, 1/2), in integers until the final division.
        tail = sum(math.comb(m, i) for i in range(min(b01, b10) + 1))
        return McNemarResult(b01, b10, None, min(1.0, 2 * tail / 2**m), "exact")
    stat = (abs(b01 - b10) - 1) ** 2 / m  # Edwards' continuity correction
    # Survival function of chi-square with one degree of freedom, without scipy: P(Z^2 > x) = erfc(sqrt(x / 2)).
    return McNemarResult(b01, b10, stat, math.erfc(math.sqrt(stat / 2)), "chi2")
