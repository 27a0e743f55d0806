"""Step-1 loss of the benchmark's first batch under each precision: why TRL's defaults "differ" from fp32.

    flock /tmp/mathtune-cpu.lock python benchmarks/precision_loss_gap.py --data src/mathtune/data/gsm8k/train.jsonl
    flock /tmp/mathtune-cpu.lock python benchmarks/precision_loss_gap.py --data ... --rows 24 --trainers

The benchmark (`mathtune bench train`) loads steps x batch rows and the Trainer shuffles that many with the seed, so
runs with another --steps start from another first batch. Part 1 scores the first batch of a `rows`-row run without
any update (LoRA B starts at 0, so this is the base model): fp32, bf16 autocast as TRL's defaults run it, bf16 body
with an fp32 head, and fp32 body with a bf16 head. `--trainers` also runs one real step of (b) TRL fp32 and (a) TRL
defaults (bf16 autocast + gradient checkpointing) and prints their logged step-1 losses.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

import torch
import torch.nn.functional as F

from mathtune.cli.common import mathtune_home
from mathtune.models import resolve_model
from mathtune.train.speed import BenchSpec, _trainer, gsm8k_rows, run_way


def first_batch_losses(spec: BenchSpec) -> dict[str, float]:
    """Loss of the first training batch under each precision variant, no update made."""
    trainer = _trainer("trl-fp32", spec, 1, Path("/tmp/precision-loss-gap"))
    batch = next(iter(trainer.get_train_dataloader()))
    model = trainer.model.train()
    base = model.get_base_model()
    targets = batch["labels"][:, 1:]
    mask = targets != -100

    def body(autocast: bool):
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
        with ctx:
            return base.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                              use_cache=False).last_hidden_state[:, :-1][mask]

    def head(hidden, bf16: bool):
        if bf16:
            return (hidden.bfloat16() @ base.lm_head.weight.bfloat16().t()).float()
        with torch.autocast("cpu", enabled=False):
            return base.lm_head(hidden.float())

    out = {}
    with torch.no_grad():
        fused = model(**batch, fused_lm_head=True, use_cache=False)
        out["fp32 (TRL's fused head)"] = float(-fused.log_probs.sum() / fused.label_mask.sum())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fused = model(**batch, fused_lm_head=True, use_cache=False)
        out["bf16 autocast, body and head (TRL defaults)"] = float(-fused.log_probs.sum() / fused.label_mask.sum())
        out["bf16 autocast body, fp32 head"] = float(F.cross_entropy(head(body(True), False), targets[mask]))
        out["fp32 body, bf16 head"] = float(F.cross_entropy(head(body(False), True), targets[mask]))
    out["labelled tokens"] = int(mask.sum())
    return out


def main() -> None:
    """Print the first-batch losses (and, with --trainers, the step-1 losses the two TRL ways log)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=64, help="rows the benchmark loads: steps x batch (8 x 8)")
    parser.add_argument("--trainers", action="store_true")
    args = parser.parse_args()
    spec = BenchSpec(model_path=resolve_model("default", mathtune_home()), rows=gsm8k_rows(args.data, args.rows),
                     steps=1)
    for name, value in first_batch_losses(spec).items():
        print(f"{name}: {value:.4f}" if isinstance(value, float) else f"{name}: {value}")
    if args.trainers:
        for way in ("trl-fp32", "trl-defaults"):
            print(f"{way}: logged step-1 loss {run_way(way, spec)['losses'][0]:.4f}")


if __name__ == "__main__":
    main()
