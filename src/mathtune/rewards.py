"""Verifiable rewards for GRPO: registered factories that return functions with TRL's reward signature.

A factory takes its options (a recipe's `grpo.rewards[i].options`) and returns `fn(completions, **columns)` ->
`list[float | None]`, one value per completion; `None` means "cannot judge this row" and TRL leaves it out of that
reward's mean (and zeroes the advantage of a completion no reward could judge). Columns come from the training
dataset (`answer`, `task`, `entry`) plus what TRL adds (`completion_ids`, `prompts`, `trainer_state`, ...).

Add your own from a file listed in the recipe's `grpo.reward_modules`:

    from mathtune.rewards import REWARDS

    @REWARDS.register("short")
    def short(max_chars: int = 200):
        def reward(completions, **_):
            return [1.0 if len(c) <= max_chars else 0.0 for c in completions]
        return reward

Pure Python (no torch): the grader, reasoning-gym's own scorers and the evaluation diagnostics do the judging.
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from typing import Any, Callable, Sequence

from mathtune.registry import Registry

RewardFn = Callable[..., list]
REWARDS: Registry[Callable[..., RewardFn]] = Registry("reward")

_ANSWER_TAG_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_THINK_RE = re.compile(r"^\s*<think>.+?</think>", re.DOTALL)
_HASH_LINE_RE = re.compile(r"^####[ \t]*\S", re.MULTILINE)


def named(name: str, fn: RewardFn) -> RewardFn:
    """Give `fn` the reward's name: TRL logs each reward under its function's __name__ (`rewards/NAME/mean`)."""
    fn.__name__ = fn.__qualname__ = name
    return fn


def _text(completion: Any) -> str:
    """Completion text, whether TRL passes a string or a conversation (list of messages)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    return str(completion)


def _column(values: Sequence | None, n: int) -> list:
    """A dataset column TRL passed, or Nones when the dataset has no such column."""
    return list(values) if values is not None else [None] * n


def _entry(entry: Any) -> dict | None:
    """A reasoning-gym entry as a dict (the dataset keeps it as JSON text, so Arrow need not type its metadata)."""
    if isinstance(entry, dict):
        return entry or None
    if isinstance(entry, str) and entry.strip():
        return json.loads(entry)
    return None


@lru_cache(maxsize=64)
def _rg_scorer(task: str):
    import reasoning_gym

    return reasoning_gym.get_score_answer_fn(task)


def gym_answer(completion: str) -> str | None:
    """The answer a reasoning-gym scorer gets: the last `<answer>...</answer>`, else the grader's extraction."""
    from mathtune.answers import extract_answer

    tags = _ANSWER_TAG_RE.findall(completion)
    return tags[-1].strip() if tags else extract_answer(completion).answer


def correctness(completion: str, answer: Any, task: Any = None, entry: Any = None, bench: str = "auto") -> float | None:
    """1.0/0.0 for a right/wrong answer (reasoning-gym: the task's score_answer, may be partial); None: unjudgeable."""
    rg_entry = _entry(entry)
    if rg_entry is not None:
        name = (rg_entry.get("metadata") or {}).get("source_dataset") or task
        pred = gym_answer(completion)
        return float(_rg_scorer(name)(pred, rg_entry)) if pred is not None else 0.0
    if answer is None or str(answer).strip() == "":
        return None
    from mathtune.answers import grade_detailed

    verdict = grade_detailed(completion, answer, bench).correct
    return None if verdict is None else float(verdict)


@REWARDS.register("accuracy")
def accuracy(bench: str = "auto") -> RewardFn:
    """1.0 when the final answer is right, else 0.0; None when the gold answer cannot be parsed.

    >>> accuracy()(["7 + 5 = 12\\n#### 12", "#### 13", "#### 5"], answer=["12", "12", "She has\\nfive left"])
    [1.0, 0.0, None]
    """

    def reward(completions: Sequence, answer=None, task=None, entry=None, **_) -> list[float | None]:
        n = len(completions)
        answers, tasks, entries = _column(answer, n), _column(task, n), _column(entry, n)
        return [correctness(_text(c), a, t, e, bench) for c, a, t, e in zip(completions, answers, tasks, entries)]

    return named("accuracy", reward)


def has_marker(text: str, marker: str) -> bool:
    """Whether `text` ends its reasoning with a final-answer marker: `#### N`, `\\boxed{}`, `<answer>`, or any."""
    from mathtune.answers import last_boxed

    found = {
        "hash": bool(_HASH_LINE_RE.search(text)),
        "boxed": last_boxed(text) is not None,
        "answer_tag": bool(_ANSWER_TAG_RE.search(text)),
    }
    return any(found.values()) if marker == "any" else found[marker]


@REWARDS.register("format")
def format_reward(marker: str = "hash", think: bool = False) -> RewardFn:
    """1.0 when the completion has the answer marker (and, with think=True, opens with `<think>...</think>`), else 0.0.

    >>> format_reward()(["3 + 4 = 7\\n#### 7", "The answer is 7."])
    [1.0, 0.0]
    >>> format_reward(marker="boxed", think=True)(["<think>3+4</think> \\\\boxed{7}", "\\\\boxed{7}"])
    [1.0, 0.0]
    """
    if marker not in {"hash", "boxed", "answer_tag", "any"}:
        raise ValueError(f"marker: expected hash, boxed, answer_tag or any, got {marker!r}")

    def reward(completions: Sequence, **_) -> list[float | None]:
        out = []
        for c in completions:
            text = _text(c)
            ok = has_marker(text, marker) and (not think or bool(_THINK_RE.match(text)))
            out.append(1.0 if ok else 0.0)
        return out

    return named("format", reward)


def _lengths(completions: Sequence, completion_ids: Sequence | None) -> list[int]:
    """Token counts from TRL's completion_ids; whitespace words when called without them (tests, notebooks)."""
    if completion_ids is not None:
        return [len(ids) for ids in completion_ids]
    return [len(_text(c).split()) for c in completions]


def cosine_value(length: int, correct: bool, max_len: int, correct_range=(0.5, 1.0), wrong_range=(-1.0, -0.5)) -> float:
    """Cosine-scaled length reward: short right answers earn most, long wrong ones are punished least."""
    progress = min(length, max_len) / max_len
    cosine = math.cos(progress * math.pi)
    if correct:
        lo, hi = correct_range  # shorter right answer -> hi
    else:
        hi, lo = wrong_range  # shorter wrong answer -> the harsher penalty, so the model is not pushed to give up early
    return lo + 0.5 * (hi - lo) * (1.0 + cosine)


@REWARDS.register("length")
def length(
    max_len: int = 512,
    correct_range: tuple[float, float] = (0.5, 1.0),
    wrong_range: tuple[float, float] = (-1.0, -0.5),
    bench: str = "auto",
) -> RewardFn:
    """Cosine length reward scaled by correctness (Yeo et al. 2025), in tokens; None when correctness is unknown.

    >>> r = length(max_len=100)
    >>> r(["#### 12", "#### 13", "#### 5"], answer=["12", "12", ""], completion_ids=[[1] * 10, [1] * 10, [1]])
    [0.9877641290737884, -0.9877641290737884, None]
    """
    correct_range, wrong_range = tuple(correct_range), tuple(wrong_range)

    def reward(completions: Sequence, answer=None, task=None, entry=None, completion_ids=None, **_) -> list:
        n = len(completions)
        answers, tasks, entries = _column(answer, n), _column(task, n), _column(entry, n)
        out: list[float | None] = []
        for c, a, t, e, tokens in zip(completions, answers, tasks, entries, _lengths(completions, completion_ids)):
            score = correctness(_text(c), a, t, e, bench)
            out.append(None if score is None else cosine_value(tokens, score >= 1.0, max_len, correct_range, wrong_range))
        return out

    return named("length", reward)


@REWARDS.register("overlong")
def overlong(max_completion_length: int = 512, cache: int = 128) -> RewardFn:
    """Soft overlong penalty (DAPO): 0 up to max - cache tokens, then linearly down to -1 at max and beyond.

    >>> overlong(max_completion_length=10, cache=4)(["", "", ""], completion_ids=[[1] * 6, [1] * 8, [1] * 12])
    [0.0, -0.5, -1.0]
    """
    if not 0 < cache <= max_completion_length:
        raise ValueError(f"cache: expected 0 < cache <= max_completion_length ({max_completion_length}), got {cache}")
    start = max_completion_length - cache

    def reward(completions: Sequence, completion_ids=None, **_) -> list[float | None]:
        out = []
        for tokens in _lengths(completions, completion_ids):
            out.append(0.0 if tokens <= start else max(-1.0, (start - tokens) / cache))
        return out

    return named("overlong", reward)


@REWARDS.register("repetition")
def repetition(n: int = 3, max_penalty: float = -1.0) -> RewardFn:
    """Penalty proportional to the share of repeated word n-grams: 0 for none repeated, max_penalty for all.

    >>> repetition()(["one two three four", "a b c a b c a b c"])
    [0.0, -0.5714285714285714]
    """
    from mathtune.eval.diagnostics import repeated_ngram_ratio

    def reward(completions: Sequence, **_) -> list[float | None]:
        return [max_penalty * repeated_ngram_ratio(_text(c).lower().split(), n) + 0.0 for c in completions]  # no -0.0

    return named("repetition", reward)


@REWARDS.register("doubt")
def doubt(per_marker: float = 0.25, per_flip: float = 0.5, loop: float = 1.0, max_penalty: float = 1.0) -> RewardFn:
    """Doubt-loop penalty from the evaluation diagnostics: reflection markers, answer flips and an ending loop.

    Returns -min(max_penalty, per_marker * markers + per_flip * flips + loop * ended_in_loop), so one "Wait" costs
    a little and a "Wait, no, it's 5. Wait, no, it's 6" spiral costs the most.

    >>> doubt()(["4 + 4 = 8\\n#### 8", "The answer is 8. Wait, no, it's 9."])
    [0.0, -1.0]
    """
    from mathtune.eval.diagnostics import diagnose

    def reward(completions: Sequence, **_) -> list[float | None]:
        out = []
        for c in completions:
            d = diagnose(_text(c), max_symbolic=4)  # symbolic checks are slow; flips need only a few
            cost = per_marker * d["doubt_markers"] + per_flip * d["answer_flips"] + loop * bool(d["loop"])
            out.append(-min(max_penalty, cost) + 0.0)  # + 0.0: no -0.0
        return out

    return named("doubt", reward)


def needs_gold(name: str) -> bool:
    """Rewards that judge correctness against the row's gold answer (or reasoning-gym entry)."""
    return name in {"accuracy", "length"}
