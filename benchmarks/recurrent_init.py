"""Untuned recurrent models built from the embedded default: completion loss vs core iterations, per adapter init.

    flock /tmp/mathtune-cpu.lock python benchmarks/recurrent_init.py     # writes results/recurrent_init.md

What it answers: with the default split (prelude 0-11, core 12-17, coda 18-29 of SmolLM2-135M-Instruct), r = 1 is
the original network; how far do extra iterations move it before any training, for the identity-mix adapter start
mix = 0.5 (damped, anchored on the prelude output) and mix = 1.0 (plain layer looping)? Measured as the mean
cross-entropy of worked chain_sum solutions (the default recipe's training targets) given their prompts.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from mathtune.config import FormatConfig
from mathtune.data.formats import build_prompt, build_target
from mathtune.data.sources import load_source
from mathtune.models import load_tokenizer, resolve_model
from mathtune.recurrent.init_from import from_llama

ROWS = 8
STEPS = (1, 2, 4, 8)
MIXES = (0.5, 1.0)


def completion_loss(model, tokenizer, rows: list[dict], steps: int) -> float:
    """Mean per-token cross-entropy of the target given the prompt, at `steps` core iterations."""
    fmt, total, count = FormatConfig(), 0.0, 0
    for row in rows:
        prompt = tokenizer(build_prompt(row["question"], fmt, tokenizer), add_special_tokens=False)["input_ids"]
        target = tokenizer(build_target(row, fmt, tokenizer.eos_token), add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt + target])
        logits = model(ids, num_steps=steps).logits[0, len(prompt) - 1 : -1]
        loss = torch.nn.functional.cross_entropy(logits, torch.tensor(target), reduction="sum")
        total, count = total + loss.item(), count + len(target)
    return total / count


def main() -> None:
    """Measure every (mix, r) and write the markdown table."""
    torch.set_num_threads(2)
    from transformers import AutoModelForCausalLM

    home = Path.home() / ".cache" / "mathtune"
    import os

    home = Path(os.environ.get("MATHTUNE_HOME", home))
    path = resolve_model("default", home)
    tokenizer = load_tokenizer(path)
    spec = {"source": "reasoning_gym", "task": "chain_sum", "size": ROWS, "seed": 1,
            "config": {"min_terms": 2, "max_terms": 3, "min_digits": 1, "max_digits": 2}}
    rows = load_source(spec, where="bench")
    llama = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    start = time.time()
    lines = ["| adapter init | " + " | ".join(f"r={r}" for r in STEPS) + " |", "|---" * (len(STEPS) + 1) + "|"]
    with torch.inference_mode():
        reference = completion_loss(lambda ids, num_steps: llama(ids), tokenizer, rows, 1)
        for mix in MIXES:
            model = from_llama(llama, injection_mix=mix)
            cells = [f"{completion_loss(model, tokenizer, rows, r):.3f}" for r in STEPS]
            lines.append(f"| mix = {mix} | " + " | ".join(cells) + " |")
    text = (
        "# Untuned recurrent models from the embedded default: completion loss vs core iterations\n\n"
        "Command: `flock /tmp/mathtune-cpu.lock python benchmarks/recurrent_init.py` (2-core CPU, torch "
        f"{torch.__version__}). Split prelude 0-11 / core 12-17 / coda 18-29 of SmolLM2-135M-Instruct; mean "
        f"cross-entropy (nats per token) of {len(rows)} worked chain_sum solutions given their prompts. "
        f"The original Llama scores {reference:.3f}; r = 1 must equal it.\n\n" + "\n".join(lines) +
        f"\n\nWall time {time.time() - start:.0f} s.\n"
    )
    out = Path(__file__).parent / "results" / "recurrent_init.md"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
