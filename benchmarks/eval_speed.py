"""Eval generation speed: mathtune's HFGenerator against unbatched `model.generate`, same prompts, greedy, one process.

    python benchmarks/eval_speed.py --model default --prompts 16 --max-new-tokens 256 --batch-size 16   # ~5 min
    python benchmarks/eval_speed.py --model default --prompts 32 --batch-size 32   # ~11 min on 2 cores: the 8x run

Formats the first N questions of the GSM8K test set with the model's chat template and generates greedily both ways:
unbatched on the first half of the prompts, HFGenerator on all of them, unbatched on the second half, so that a
change of load on the machine (it is shared) hits both ways. Speed is generated tokens (up to and including EOS)
per wall second, prefill included. A prompt counts as identical when both ways give the same text and the same
number of tokens. The machine, the command and the numbers go between the markers of
benchmarks/results/eval_speed.md (the notes around them are kept).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "eval_speed.md"
GSM8K = Path("/work/shared/data/gsm8k/test.jsonl")
BEGIN, END = "<!-- eval_speed:begin -->", "<!-- eval_speed:end -->"


def load(model_arg: str):
    from platformdirs import user_cache_dir
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mathtune.models import resolve_model

    path = resolve_model(model_arg, Path(user_cache_dir("mathtune")))
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(path)


def unbatched(model, tokenizer, prompts: list[str], max_new_tokens: int, eos: list[int]) -> list[list[int]]:
    """The baseline: one `model.generate` call per prompt; returns new ids up to and including the first EOS."""
    out = []
    for prompt in prompts:
        ids = torch.tensor([tokenizer(prompt, add_special_tokens=False)["input_ids"]])
        with torch.inference_mode():
            seq = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                 do_sample=False, eos_token_id=eos, pad_token_id=eos[0])
        new = seq[0, ids.shape[1] :].tolist()
        cut = next((i + 1 for i, t in enumerate(new) if t in eos), len(new))
        out.append(new[:cut])
    return out


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    import transformers

    return (f"{cpu}, {os.cpu_count()} logical cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"transformers {transformers.__version__}, Python {platform.python_version()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="'default' (embedded SmolLM2-135M) or a checkpoint folder")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--no-write", action="store_true", help="print only, leave the results file alone")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from mathtune.eval.generate import GenerationConfig, HFGenerator, eos_token_ids

    model, tokenizer = load(args.model)
    rows = [json.loads(line) for line in GSM8K.open()][: args.prompts]
    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": r["question"]}], tokenize=False,
                                             add_generation_prompt=True) for r in rows]
    eos = sorted(eos_token_ids(model, tokenizer))
    generator = HFGenerator(model, tokenizer)
    config = GenerationConfig(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    load_before = os.getloadavg()[0]

    half = len(prompts) // 2
    t0 = time.perf_counter()
    base = unbatched(model, tokenizer, prompts[:half], args.max_new_tokens, eos)
    t1 = time.perf_counter()
    fast = [c[0] for c in generator.generate(prompts, config, progress=False)]
    t2 = time.perf_counter()
    base += unbatched(model, tokenizer, prompts[half:], args.max_new_tokens, eos)
    t3 = time.perf_counter()

    base_tokens, fast_tokens = sum(map(len, base)), sum(c.num_tokens for c in fast)
    base_rate, fast_rate = base_tokens / ((t1 - t0) + (t3 - t2)), fast_tokens / (t2 - t1)
    same, differ = 0, []
    for i, (ids, c) in enumerate(zip(base, fast)):
        text = tokenizer.decode([t for t in ids if t not in eos], skip_special_tokens=True)
        if text == c.text and len(ids) == c.num_tokens:
            same += 1
        else:
            at = next((k for k, (a, b) in enumerate(zip(text, c.text)) if a != b), min(len(text), len(c.text)))
            differ.append(f"prompt {i}: first differs at character {at} of {len(text)}")
    command = "python benchmarks/eval_speed.py " + shlex.join(sys.argv[1:])
    report = "\n".join([
        f"- machine: {machine()}; load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after",
        f"- command: `{command}`",
        f"- workload: {len(prompts)} GSM8K test prompts (chat template), greedy, max_new_tokens {args.max_new_tokens}, "
        f"fp32, HFGenerator batch_size {args.batch_size}",
        "",
        "| way | generated tokens | seconds | tokens/s |",
        "|---|---|---|---|",
        f"| unbatched `model.generate` | {base_tokens} | {(t1 - t0) + (t3 - t2):.1f} | {base_rate:.1f} |",
        f"| mathtune HFGenerator | {fast_tokens} | {t2 - t1:.1f} | {fast_rate:.1f} |",
        "",
        f"**speed-up {fast_rate / base_rate:.2f}x; identical completions {same}/{len(prompts)}**"
        + ("" if not differ else " (" + "; ".join(differ) + ")"),
    ])
    print(report)
    if not args.no_write:
        write(report)


def write(report: str) -> None:
    """Replace the text between the markers of the results file (create it if missing), keeping the notes."""
    text = RESULTS.read_text() if RESULTS.exists() else f"# Eval generation speed\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(f"{head}{BEGIN}\n{report}\n{END}{tail}")


if __name__ == "__main__":
    main()
