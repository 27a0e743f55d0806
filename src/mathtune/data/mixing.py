"""Mixing several sources by weight, and the whole-number allocation that stratified sampling shares with it.

    data:
      train:
        - {source: gsm8k, split: train, weight: 0.6}
        - {source: numina_cot, split: train, weight: 0.4}
      curation: {mix_size: 20000}     # omitted: as many rows as the weights allow without repeating one

Weights are relative (0.6/0.4 and 3/2 mix alike). A source with too few rows for its share of `mix_size` is
repeated (whole passes, then a random remainder) and the statistics say so; without `mix_size` no row repeats.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence


def allocate(total: int, shares: Sequence[float]) -> list[int]:
    """Split `total` into whole counts proportional to `shares` (largest remainder, so they sum to `total`)."""
    norm = sum(shares)
    if total <= 0 or norm <= 0:
        return [0] * len(shares)
    exact = [total * s / norm for s in shares]
    counts = [math.floor(x) for x in exact]
    # hand out what flooring lost to the largest remainders (ties: earlier first, so the result is stable)
    order = sorted(range(len(shares)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def sample_rows(rows: list, k: int, rng: random.Random) -> list:
    """`k` rows in their original order: a random subset when k <= len(rows), else whole repeats plus a subset."""
    if k <= 0 or not rows:
        return []
    repeats, rest = divmod(k, len(rows))
    chosen = sorted(rng.sample(range(len(rows)), rest))
    return rows * repeats + [rows[i] for i in chosen]


def mix_counts(available: Sequence[int], weights: Sequence[float], size: int | None) -> list[int]:
    """Rows to take from each pool: `size` split by weight, or (None) the largest mix whose shares honour the
    weights without repeating a row. Empty pools get nothing and the others share their weight."""
    live = [w if n > 0 else 0.0 for n, w in zip(available, weights)]
    norm = sum(live)
    if norm == 0:
        return [0] * len(available)
    if size is None:
        size = math.floor(min(n * norm / w for n, w in zip(available, live) if w > 0) + 1e-9)
    return allocate(size, live)


def mix(pools: Sequence[list], weights: Sequence[float], size: int | None, seed: int) -> tuple[list, list[int]]:
    """The mixed rows (shuffled with `seed`) and how many came from each pool."""
    counts = mix_counts([len(p) for p in pools], weights, size)
    rng = random.Random(seed)
    out = [row for pool, k in zip(pools, counts) for row in sample_rows(pool, k, rng)]
    rng.shuffle(out)
    return out, counts
