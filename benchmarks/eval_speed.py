"""Eval generation speed: mathtune's streaming generator against unbatched `model.generate` and the previous path.

    flock /tmp/mathtune-cpu.lock python benchmarks/eval_speed.py                      # ~15 min on 2 cores
    flock /tmp/mathtune-cpu.lock python benchmarks/eval_speed.py --profile 64         # torch profile of decode steps

One process, the embedded default model (fp32), greedy, GSM8K test prompts as `mathtune eval --bench gsm8k` builds
them (chat template + instruction), no stop strings (every way generates to EOS or the cap). Ways:
  (a) unbatched `model.generate`, one prompt at a time, on the first `--reference` prompts (half before the other
      ways, half after, so a change of load on the shared machine hits every way);
  (b) the previous path: `generate()` on chunks of batch 16 x 4 prompts, attention row by row (the batch drains at
      the end of each chunk);
  (c) the new path: all `--prompts` prompts streamed through one queue, batched attention, at each `--batch-sizes`
      (the first is `mathtune eval`'s default).
Speed is generated tokens (EOS included) per wall second, prefill included. Exactness is counted on the reference
prompts: identical completions (same text and token count as (a)) and identical verdicts (graded against the gold).
If llama-cpp-python is installed, (d) runs the embedded GGUF (Q4_1, so other weights) on the reference prompts as a
speed reference. Writes benchmarks/results/eval_speed.json and the block between the markers of eval_speed.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shlex
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
RESULTS_MD = HERE / "results" / "eval_speed.md"
RESULTS_JSON = HERE / "results" / "eval_speed.json"
BEGIN, END = "<!-- eval_speed:begin -->", "<!-- eval_speed:end -->"
OLD_BATCH, OLD_CHUNK_BATCHES = 16, 4  # the previous `mathtune eval` defaults (runner.CHUNK_BATCHES)


def load():
    """The embedded default model in fp32, its tokenizer, and the GSM8K test rows shipped with mathtune."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mathtune.cli.common import mathtune_home
    from mathtune.data.sources import load_source
    from mathtune.models import resolve_model

    path = resolve_model("default", mathtune_home())
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(path), load_source({"source": "gsm8k", "split": "test"})


def unbatched(model, tokenizer, prompts: list[str], max_new_tokens: int, eos: list[int]) -> list[list[int]]:
    """One `model.generate` call per prompt; new ids up to and including the first EOS."""
    out = []
    for prompt in prompts:
        ids = torch.tensor([tokenizer(prompt, add_special_tokens=False)["input_ids"]])
        with torch.inference_mode():
            seq = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                 do_sample=False, eos_token_id=eos, pad_token_id=eos[0])
        new = seq[0, ids.shape[1]:].tolist()
        out.append(new[: next((i + 1 for i, t in enumerate(new) if t in eos), len(new))])
    return out


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def machine() -> dict:
    """CPU model, the flags that decide precision and speed here, torch's capability, threads, load."""
    import platform

    import transformers

    info = open("/proc/cpuinfo").read() if Path("/proc/cpuinfo").is_file() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                 platform.processor())
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    wanted = ["avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx_vnni"]
    return {"cpu": model, "cores": os.cpu_count(), "flags": [f for f in wanted if f in flags],
            "torch": torch.__version__, "capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads(), "transformers": transformers.__version__}


def llama_cpp_row(prompts: list[str], max_new_tokens: int) -> dict | None:
    """(d): llama-cpp-python on the embedded Q4_1 GGUF, one stream, when that package is installed."""
    try:
        from llama_cpp import Llama
    except ImportError:
        return None
    from mathtune.models import default_gguf_path

    llm = Llama(model_path=str(default_gguf_path()), n_ctx=2048, n_threads=torch.get_num_threads(), verbose=False)
    start, tokens = time.perf_counter(), 0
    for prompt in prompts:
        out = llm(prompt, max_tokens=max_new_tokens, temperature=0.0)
        tokens += out["usage"]["completion_tokens"]
    return {"tokens": tokens, "seconds": time.perf_counter() - start}


def profile(model, tokenizer, prompts: list[str], batch_size: int, max_new_tokens: int) -> None:
    """Print the torch profiler's table of a streamed generation at `batch_size` (decode steps dominate)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from mathtune.eval.generate import GenerationConfig, HFGenerator

    config = GenerationConfig(max_new_tokens=max_new_tokens, batch_size=batch_size)
    generator = HFGenerator(model, tokenizer)
    list(generator.stream(prompts[:4], GenerationConfig(max_new_tokens=4, batch_size=4), progress=False))
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        (out, seconds) = timed(lambda: list(generator.stream(prompts[:batch_size], config, progress=False)))
    print(f"{sum(c.num_tokens for _, _, c in out)} tokens in {seconds:.1f} s at batch {batch_size}")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=128, help="prompts for the new path (c)")
    parser.add_argument("--reference", type=int, default=32, help="prompts for unbatched (a), the first of them")
    parser.add_argument("--old-prompts", type=int, default=128, help="prompts for the previous path (b); 0 skips it")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--batch-sizes", default="64,32,128", help="new-path batch sizes; the first is the default")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--bf16", action="store_true", help="also run the new path with eval.precision bf16")
    parser.add_argument("--int8", action="store_true", help="also run the new path with eval.precision int8")
    parser.add_argument("--profile", type=int, default=0, help="profile the new path at this batch size and exit")
    parser.add_argument("--no-write", action="store_true", help="print only, leave the results files alone")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from mathtune.answers import grade
    from mathtune.config import FormatConfig
    from mathtune.data.formats import build_prompt
    from mathtune.eval.generate import GenerationConfig, HFGenerator, collect, eos_token_ids, for_precision

    model, tokenizer, rows = load()
    rows = rows[: max(args.prompts, args.reference, args.old_prompts)]
    prompts = [build_prompt(r["question"], FormatConfig(), tokenizer) for r in rows]
    if args.profile:
        profile(model, tokenizer, prompts, args.profile, args.max_new_tokens)
        return
    eos = sorted(eos_token_ids(model, tokenizer))
    generator = HFGenerator(model, tokenizer)
    load_before = os.getloadavg()
    ref_prompts, half = prompts[: args.reference], args.reference // 2

    base, t_first = timed(lambda: unbatched(model, tokenizer, ref_prompts[:half], args.max_new_tokens, eos))
    ways: list[dict] = []
    if args.old_prompts:
        old_cfg = GenerationConfig(max_new_tokens=args.max_new_tokens, batch_size=OLD_BATCH, exact_attention=True)
        step = OLD_BATCH * OLD_CHUNK_BATCHES

        def old_path():
            return [row for s in range(0, args.old_prompts, step)
                    for row in generator.generate(prompts[s: min(s + step, args.old_prompts)], old_cfg, progress=False)]

        out, seconds = timed(old_path)
        ways.append({"way": f"(b) previous: chunks of {step}, batch {OLD_BATCH}, row-by-row attention",
                     "prompts": args.old_prompts, "batch_size": OLD_BATCH, "completions": [c[0] for c in out],
                     "seconds": seconds})
    for b in [int(x) for x in args.batch_sizes.split(",")]:
        cfg = GenerationConfig(max_new_tokens=args.max_new_tokens, batch_size=b)
        out, seconds = timed(lambda: collect(generator.stream(prompts[: args.prompts], cfg, progress=False),
                                             args.prompts, 1))
        ways.append({"way": f"(c) new: one streamed queue, batch {b}, batched attention", "prompts": args.prompts,
                     "batch_size": b, "completions": [c[0] for c in out], "seconds": seconds})
    for precision in [p for p in ("bf16", "int8") if getattr(args, p)]:  # opt-in eval.precision: the same queue
        other = HFGenerator(for_precision(copy.deepcopy(model), precision), tokenizer)
        b = int(args.batch_sizes.split(",")[0])
        cfg = GenerationConfig(max_new_tokens=args.max_new_tokens, batch_size=b)
        out, seconds = timed(lambda: collect(other.stream(prompts[: args.prompts], cfg, progress=False),
                                             args.prompts, 1))
        ways.append({"way": f"(c) new, eval.precision {precision}, batch {b}", "prompts": args.prompts,
                     "batch_size": b, "completions": [c[0] for c in out], "seconds": seconds})
        del other
    rest, t_second = timed(lambda: unbatched(model, tokenizer, ref_prompts[half:], args.max_new_tokens, eos))
    base += rest
    llama = llama_cpp_row(ref_prompts, args.max_new_tokens)

    base_texts = [tokenizer.decode([t for t in ids if t not in eos], skip_special_tokens=True) for ids in base]
    base_verdicts = [grade(t, r["answer"], "gsm8k") for t, r in zip(base_texts, rows)]
    base_tokens, base_seconds = sum(map(len, base)), t_first + t_second
    unbatched_rate = base_tokens / base_seconds
    table = []
    for w in ways:
        comps = w.pop("completions")
        tokens = sum(c.num_tokens for c in comps)
        ref = comps[: args.reference]
        same = sum(c.text == t and c.num_tokens == len(ids) for c, t, ids in zip(ref, base_texts, base))
        verdicts = sum(grade(c.text, r["answer"], "gsm8k") == v for c, r, v in zip(ref, rows, base_verdicts))
        rate = tokens / w["seconds"]
        table.append({**w, "tokens": tokens, "tokens_per_s": rate, "speedup_vs_unbatched": rate / unbatched_rate,
                      "identical_completions": same / len(ref), "identical_verdicts": verdicts / len(ref)})
    new = next(w for w in table if w["way"].startswith("(c)"))  # the first: mathtune eval's defaults
    command = "python benchmarks/eval_speed.py " + shlex.join(sys.argv[1:])
    result = {
        "command": command, "machine": machine(), "load_average_before": load_before[0],
        "load_average_after": os.getloadavg()[0], "prompts": args.prompts, "reference_prompts": args.reference,
        "max_new_tokens": args.max_new_tokens, "unbatched_tokens": base_tokens, "unbatched_seconds": base_seconds,
        "unbatched_tokens_per_s": unbatched_rate, "mathtune_batch_size": new["batch_size"],
        "mathtune_tokens_per_s": new["tokens_per_s"], "speedup_vs_unbatched": new["speedup_vs_unbatched"],
        "identical_completions": new["identical_completions"], "identical_verdicts": new["identical_verdicts"],
        "ways": table,
        "llama_cpp": None if llama is None else {**llama, "tokens_per_s": llama["tokens"] / llama["seconds"]},
    }
    report = render(result)
    print(report)
    if not args.no_write:
        RESULTS_JSON.write_text(json.dumps(result, indent=2) + "\n")
        write(report)


def render(r: dict) -> str:
    """The markdown block: machine, command, one row per way."""
    m = r["machine"]
    lines = [
        f"- machine: {m['cpu']} ({', '.join(m['flags'])}; torch capability {m['capability']}), {m['cores']} cores, "
        f"torch {m['torch']} ({m['threads']} threads), transformers {m['transformers']}; load average "
        f"{r['load_average_before']:.1f} before, {r['load_average_after']:.1f} after",
        f"- command: `{r['command']}`",
        f"- workload: GSM8K test prompts as `mathtune eval --bench gsm8k` builds them, greedy, fp32, max_new_tokens "
        f"{r['max_new_tokens']}, no stop strings; exactness on the first {r['reference_prompts']} prompts",
        "",
        "| way | prompts | tokens | seconds | tokens/s | vs unbatched | identical completions | identical verdicts |",
        "|---|---|---|---|---|---|---|---|",
        f"| (a) unbatched `model.generate` | {r['reference_prompts']} | {r['unbatched_tokens']} | "
        f"{r['unbatched_seconds']:.1f} | {r['unbatched_tokens_per_s']:.1f} | 1x | (reference) | (reference) |",
    ]
    for w in r["ways"]:
        lines.append(f"| {w['way']} | {w['prompts']} | {w['tokens']} | {w['seconds']:.1f} | {w['tokens_per_s']:.1f} | "
                     f"{w['speedup_vs_unbatched']:.1f}x | {w['identical_completions']:.1%} | "
                     f"{w['identical_verdicts']:.1%} |")
    if r["llama_cpp"]:
        ll = r["llama_cpp"]
        lines.append(f"| (d) llama-cpp-python, Q4_1 GGUF, one stream | {r['reference_prompts']} | {ll['tokens']} | "
                     f"{ll['seconds']:.1f} | {ll['tokens_per_s']:.1f} | | | |")
    return "\n".join(lines)


def write(report: str) -> None:
    """Replace the text between the markers of the results file, keeping the notes around them."""
    text = RESULTS_MD.read_text() if RESULTS_MD.exists() else f"# Eval generation speed\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    RESULTS_MD.write_text(f"{head}{BEGIN}\n{report}\n{END}{rest.split(END, 1)[1]}")


if __name__ == "__main__":
    main()
