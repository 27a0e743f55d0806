"""Training speed: plain TRL (its defaults, and fp32) against mathtune's fast path, same data, seed and steps.

    flock /tmp/mathtune-cpu.lock python benchmarks/train_speed.py                       # = mathtune bench train
    flock /tmp/mathtune-cpu.lock python benchmarks/train_speed.py --steps 8 --defaults-steps 1

Arguments are those of `mathtune bench train` (see `mathtune bench train --help`); the logic is in
src/mathtune/train/speed.py. Results go between the markers of benchmarks/results/train_speed.md.
"""

from __future__ import annotations

import sys

from mathtune.cli import app

if __name__ == "__main__":
    app(["bench", "train", *sys.argv[1:]], prog_name="mathtune")
