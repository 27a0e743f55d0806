"""torch profile of one training step of a `mathtune bench train` way (the ops that cost the most, by self time).

    flock /tmp/mathtune-cpu.lock python benchmarks/train_profile.py mathtune        # or trl-fp32, mathtune-fp32, ...

Builds the way's trainer exactly as `mathtune bench train` does (src/mathtune/train/speed.py: 32 packaged GSM8K
train rows, batch 8, LoRA r 16 all-linear, dropout 0.05), trains 4 steps and profiles step 3 (steps 1-2 warm up).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    from mathtune.cli.common import mathtune_home
    from mathtune.data.sources import load_source
    from mathtune.models import resolve_model
    from mathtune.train import speed

    way = sys.argv[1] if len(sys.argv) > 1 else "mathtune"
    rows = list(load_source({"source": "gsm8k", "split": "train"}))[:32]
    spec = speed.BenchSpec(model_path=str(resolve_model("default", mathtune_home())), rows=rows, steps=4)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = speed._trainer(way, spec, 4, Path(tmp))
        inner, calls = trainer.training_step, [0]

        def profiled_step(model, inputs, *args, **kwargs):
            calls[0] += 1
            if calls[0] != 3:
                return inner(model, inputs, *args, **kwargs)
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
                start = time.perf_counter()
                out = inner(model, inputs, *args, **kwargs)
                print(f"{way}: step 3 took {time.perf_counter() - start:.2f} s under the profiler")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))
            return out

        trainer.training_step = profiled_step
        trainer.train()


if __name__ == "__main__":
    main()
