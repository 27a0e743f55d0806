"""The dry run's memory estimate against the peak measured on CPU (benchmarks/memory_estimate.py, one step each)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def bench():
    spec = importlib.util.spec_from_file_location("memory_estimate", ROOT / "benchmarks/memory_estimate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("batch, length, checkpointing", [(2, 256, False), (2, 256, True)])
def test_estimate_within_25_percent_of_measured_peak(batch, length, checkpointing):
    result = bench().measure(batch, length, checkpointing, pinned=True, steps=1)
    assert result["row_tokens"] == [length], "every row must fill max_length for the comparison to hold"
    assert result["checkpointing_active"] == checkpointing
    ratio = result["estimate_total"] / result["measured_total"]
    assert 0.75 <= ratio <= 1.25, f"estimate {result['estimate_total'] / 2**20:.0f} MiB vs measured " \
                                  f"{result['measured_total'] / 2**20:.0f} MiB"
