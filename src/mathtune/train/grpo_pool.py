"""The GRPO prompt pool: which training prompts are in play (a pass-rate band), drawn in TRL's group order.

A prompt the model always or never solves gives a group of all-equal rewards and no gradient, so the pool keeps the
prompts whose estimated pass rate lies in a band (open-r1's pass-rate filtering); a curriculum re-estimates the rates
and moves the band as training goes. `PromptPool` is shared by the training sampler and by dynamic sampling's
refills, so both draw from the same, current pool. Pure Python plus torch's Sampler base class.
"""

from __future__ import annotations

import random
from typing import Iterator, Sequence

from torch.utils.data import Sampler


def in_band(rates: Sequence[float | None], band: tuple[float, float]) -> list[int]:
    """Indices whose pass rate lies in [lo, hi] (both ends included); unjudged prompts (None) are left out.

    >>> in_band([0.0, 0.125, 0.5, 1.0, None, 0.9], (0.1, 0.9))
    [1, 2, 5]
    """
    lo, hi = band
    return [i for i, r in enumerate(rates) if r is not None and lo <= r <= hi]


def next_band(band: tuple[float, float], shift: float) -> tuple[float, float]:
    """The band moved by `shift` at a curriculum refresh, each end clamped to [0, 1].

    >>> next_band((0.1, 0.9), -0.2)
    (0.0, 0.7)
    >>> next_band((0.3, 0.6), 0.5)
    (0.8, 1.0)
    """
    lo, hi = (round(min(1.0, max(0.0, end + shift)), 6) for end in band)
    return lo, hi


class PromptPool:
    """The active prompt indices and a seeded, reshuffled cycle through them (no prompt twice in one pass)."""

    def __init__(self, size: int, seed: int, active: Sequence[int] | None = None):
        self.size = size
        self._rng = random.Random(seed)
        self._queue: list[int] = []
        self.active: list[int] = []
        self.set_active(range(size) if active is None else active)

    def set_active(self, indices: Sequence[int]) -> None:
        """Replace the pool (a curriculum refresh); the next draws come from the new one."""
        indices = sorted(set(int(i) for i in indices))
        if not indices:
            raise ValueError("the prompt pool would be empty")
        if indices[0] < 0 or indices[-1] >= self.size:
            raise ValueError(f"prompt index out of range 0..{self.size - 1}")
        self.active, self._queue = indices, []

    def draw(self, n: int) -> list[int]:
        """`n` prompt indices, distinct unless the pool holds fewer than `n`."""
        out: list[int] = []
        while len(out) < n:
            if not self._queue:
                self._queue = list(self.active)
                self._rng.shuffle(self._queue)
            pick = self._queue.pop()
            if pick in out and len(self.active) >= n:  # a reshuffle may bring back one drawn just before it
                self._queue.insert(0, pick)
                continue
            out.append(pick)
        return out


class PoolSampler(Sampler):
    """TRL's RepeatSampler order (each prompt `group_size` times in a row, each chunk `repeat_count` times) over a
    PromptPool, read chunk by chunk, so a pool changed mid-epoch takes effect at the next generation batch."""

    def __init__(self, pool: PromptPool, group_size: int, prompts_per_batch: int, repeat_count: int = 1):
        self.pool, self.group_size = pool, group_size
        self.prompts_per_batch, self.repeat_count = prompts_per_batch, repeat_count
        # an epoch as long as one pass over the starting pool: Trainer only uses it to count epochs
        self._chunks = max(1, len(pool.active) // prompts_per_batch)

    def __iter__(self) -> Iterator[int]:
        for _ in range(self._chunks):
            chunk = self.pool.draw(self.prompts_per_batch)
            for _ in range(self.repeat_count):
                for index in chunk:
                    yield from [index] * self.group_size

    def __len__(self) -> int:
        return self._chunks * self.prompts_per_batch * self.group_size * self.repeat_count


def histogram(rates: Sequence[float | None], bins: int = 10, band: tuple[float, float] | None = None) -> list[str]:
    """Text histogram of pass rates (`[lo, hi)` bins, the last one closed), with the share inside `band`."""
    judged = [r for r in rates if r is not None]
    counts = [0] * bins
    for r in judged:
        counts[min(bins - 1, int(r * bins))] += 1
    width = max(counts, default=0) or 1
    lines = [f"pass rates of {len(judged)} prompts" + (f" ({len(rates) - len(judged)} unjudged)" if len(judged) < len(rates) else "")]
    for b, count in enumerate(counts):
        lo, hi = b / bins, (b + 1) / bins
        close = "]" if b == bins - 1 else ")"
        lines.append(f"  [{lo:g}, {hi:g}{close} {count:6d} {'#' * round(40 * count / width)}")
    if band is not None:
        kept = len(in_band(rates, band))
        lines.append(f"  in band [{band[0]:g}, {band[1]:g}]: {kept} of {len(rates)}")
    return lines
