"""Training-speed benchmark: plain TRL (its defaults, and fp32) against mathtune's fast path, in one run.

    mathtune bench train                       # GSM8K train rows, batch 8, max length 512, 8 steps per way
    python benchmarks/train_speed.py --steps 8 # the same

Every way trains a fresh LoRA (r 16, all linear layers, dropout 0.05) on the embedded default model, on the same
rows in the same order (same seed), for the same number of optimizer steps, with the same learning rate and schedule,
each in its own process (clean peak memory). Speed counts real tokens, not padding, per second of optimizer steps,
the first step (one-time set-up) left out. The machine's matmul bound comes from GEMMs of the model's own shapes.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import platform
import resource
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# what each way changes from the common arguments; None = TRL's own default
WAYS: dict[str, dict[str, Any]] = {
    "trl-defaults": {"trainer": {}, "fast": False},  # bf16 autocast + gradient checkpointing, as TRL ships them
    "trl-fp32": {"trainer": {"bf16": False, "gradient_checkpointing": False}, "fast": False},
    # mathtune's path: speed levers, no checkpointing, precision by the processor (speed.precision: auto)
    "mathtune": {"trainer": {}, "fast": True, "precision": "auto"},
    "mathtune-fp32": {"trainer": {}, "fast": True, "precision": "fp32"},  # the same levers, fp32 forced
    # (c) without speed.frozen_bf16: autocast casts the frozen base weights at every forward (what that lever buys)
    "mathtune-recast": {"trainer": {}, "fast": True, "precision": "auto", "speed": {"frozen_bf16": False}},
    # (c) without speed.fused_lora: PEFT's own LoRA forward (two casts per module, dropout and scaling on full tensors)
    "mathtune-peft-lora": {"trainer": {}, "fast": True, "precision": "auto", "speed": {"fused_lora": False}},
}
RUN_ORDER = ["trl-fp32", "mathtune", "mathtune-peft-lora", "mathtune-recast", "mathtune-fp32", "trl-defaults"]
LABELS = {
    "trl-defaults": "(a) plain TRL, its defaults (bf16 autocast, gradient checkpointing)",
    "trl-fp32": "(b) plain TRL, fp32, no gradient checkpointing",
    "mathtune": "(c) mathtune, precision auto (padding-free, per-example attention, compact LM head, fast LoRA dropout)",
    "mathtune-fp32": "(d) mathtune, precision fp32 (same levers)",
    "mathtune-recast": "(e) (c) with speed.frozen_bf16 off (frozen weights cast to bf16 at every forward)",
    "mathtune-peft-lora": "(f) (c) with speed.fused_lora off (PEFT's LoRA forward)",
}


@dataclass
class BenchSpec:
    """What every way shares."""

    model_path: str
    rows: list[dict]
    steps: int = 8
    batch_size: int = 8
    max_length: int = 512
    learning_rate: float = 2e-4
    seed: int = 42
    threads: int | None = None
    steps_by_way: dict[str, int] = field(default_factory=dict)  # fewer steps for a way too slow to run them all
    batch_by_way: dict[str, int] = field(default_factory=dict)  # a smaller batch for such a way


def common_trainer_args(spec: BenchSpec, steps: int, batch_size: int) -> dict[str, Any]:
    """SFTConfig arguments every way gets (LR schedule, batch, length, no checkpoint saving)."""
    return {
        "max_steps": steps, "per_device_train_batch_size": batch_size, "gradient_accumulation_steps": 1,
        "learning_rate": spec.learning_rate, "lr_scheduler_type": "linear", "warmup_steps": 0,
        "max_length": spec.max_length, "seed": spec.seed, "logging_steps": 1, "save_strategy": "no",
        "report_to": "none", "disable_tqdm": True, "dataloader_num_workers": 0,
    }


def _trainer(way: str, spec: BenchSpec, steps: int, out: Path):
    """Build the way's trainer: plain trl.SFTTrainer for (a)/(b), mathtune's build_trainer for (c)."""
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from mathtune.config import FormatConfig, LoraConfig, Recipe
    from mathtune.data.formats import to_prompt_completion
    from mathtune.models import load_model, load_tokenizer, lora_config
    from mathtune.train.sft import build_trainer

    tok = load_tokenizer(spec.model_path)
    ds = Dataset.from_list(to_prompt_completion(spec.rows, FormatConfig(), tok))
    model = load_model(spec.model_path)
    batch = spec.batch_by_way.get(way, spec.batch_size)
    args = {**common_trainer_args(spec, steps, batch), **WAYS[way]["trainer"]}
    if WAYS[way]["fast"]:
        recipe = Recipe.model_validate({"seed": spec.seed, "data": {"eval": {"source": "file", "path": "unused.jsonl"}},
                                        "trainer": args, "speed": {"threads": spec.threads,
                                                                   "precision": WAYS[way]["precision"],
                                                                   **WAYS[way].get("speed", {})}})
        return build_trainer(recipe, model, tok, ds, None, out)
    if not torch.cuda.is_available():
        args["use_cpu"] = True
    return SFTTrainer(model=model, args=SFTConfig(output_dir=str(out), **args), train_dataset=ds,
                      processing_class=tok, peft_config=lora_config(LoraConfig()))


def run_way(way: str, spec: BenchSpec) -> dict[str, Any]:
    """Train one way for its steps; returns per-step seconds, real and processed tokens, losses and peak memory."""
    import torch
    from transformers import TrainerCallback

    if spec.threads:
        torch.set_num_threads(spec.threads)
    steps = spec.steps_by_way.get(way, spec.steps)
    with tempfile.TemporaryDirectory(prefix=f"bench-{way}-") as tmp:
        trainer = _trainer(way, spec, steps, Path(tmp))
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        real, processed, seconds = [], [], []
        inner = trainer.training_step

        def counting_step(model, inputs, *a, **kw):
            mask = inputs.get("attention_mask")
            real.append(int(mask.sum()) if mask is not None else int(inputs["input_ids"].numel()))
            processed.append(int(inputs["input_ids"].numel()))
            return inner(model, inputs, *a, **kw)

        class Clock(TrainerCallback):
            def on_step_begin(self, *_, **__):
                self.t = time.perf_counter()

            def on_step_end(self, *_, **__):
                seconds.append(time.perf_counter() - self.t)

        trainer.training_step = counting_step
        trainer.add_callback(Clock())
        trainer.train()
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        precision = getattr(trainer, "mathtune_precision", None) or {
            "dtype": "bf16" if trainer.args.bf16 else "fp32", "why": "TRL's SFTConfig as this way sets it"}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"way": way, "steps": steps, "batch": spec.batch_by_way.get(way, spec.batch_size), "seconds": seconds, "real": real, "processed": processed, "losses": losses,
            "peak_rss_mb": peak / 1024, "train_rss_mb": (peak - rss_before) / 1024, "precision": precision,
            "gradient_checkpointing": bool(trainer.args.gradient_checkpointing)}


def _child(way: str, spec: BenchSpec, queue) -> None:
    try:
        queue.put(run_way(way, spec))
    except BaseException as exc:  # report it to the parent rather than die silently
        queue.put({"way": way, "error": f"{type(exc).__name__}: {exc}"})


def run_isolated(way: str, spec: BenchSpec) -> dict[str, Any]:
    """run_way in a fresh process, so that its peak memory is its own."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(way, spec, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def gemm_gflops(m: int, k: int, n: int, dtype_name: str, reps: int = 3) -> float:
    """Best-of-`reps` GFLOP/s of an (m x k) @ (k x n) matmul."""
    import torch

    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * m * k * n / best / 1e9


def matmul_bound(config: dict, tokens: int, dtype_name: str, reps: int = 3) -> float:
    """GFLOP/s of one decoder layer's GEMMs at `tokens` rows (time-weighted over q, k, v, o, gate, up, down)."""
    h, f = config["hidden_size"], config["intermediate_size"]
    kv = config["num_key_value_heads"] * config.get("head_dim", h // config["num_attention_heads"])
    shapes = [(h, h), (h, kv), (h, kv), (h, h), (h, f), (h, f), (f, h)]
    flops = secs = 0.0
    for k, n in shapes:
        g = gemm_gflops(tokens, k, n, dtype_name, reps)
        flops += 2 * tokens * k * n
        secs += 2 * tokens * k * n / (g * 1e9)
    return flops / secs / 1e9


def machine() -> str:
    """CPU model, its bf16-relevant flags, torch's capability, cores, versions (and the GPU when there is one)."""
    import torch
    import transformers

    from mathtune.precision import RELEVANT_FLAGS, read_cpu_info

    cpu = read_cpu_info()
    flags = ", ".join(f"{f} {'yes' if f in cpu.flags else 'no'}" for f in RELEVANT_FLAGS if f != "bf16" or
                      platform.machine() in ("aarch64", "arm64"))
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    return (f"{cpu.model}, {os.cpu_count()} cores{gpu}; cpuinfo flags: {flags}; torch CPU capability "
            f"{cpu.capability}; torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"transformers {transformers.__version__}")


def summarize(result: dict[str, Any]) -> dict[str, float]:
    """Real tokens/s and seconds/step over the steps after the first (all steps when there is only one)."""
    skip = 1 if len(result["seconds"]) > 1 else 0
    secs, real = sum(result["seconds"][skip:]), sum(result["real"][skip:])
    return {"tok_s": real / secs, "s_step": secs / len(result["seconds"][skip:]),
            "padding": 1 - sum(result["real"]) / sum(result["processed"])}


def gsm8k_rows(path: Path, count: int) -> list[dict]:
    """The first `count` GSM8K train rows (chain-of-thought solutions) from a local copy: a folder or a .jsonl file."""
    from mathtune.data.sources import load_source

    return load_source({"source": "gsm8k", "split": "train", "path": str(path), "limit": count}, where="--data")


def _loss_gap(a: dict, b: dict) -> tuple[int, float, float, float]:
    """Step, a's loss, b's loss and their relative gap, after the last step both ran."""
    n = min(len(a["losses"]), len(b["losses"]))
    la, lb = a["losses"][n - 1], b["losses"][n - 1]
    return n, la, lb, abs(la - lb) / lb


def _way_row(r: dict, results: list[dict], by_way: dict, bound: dict, flop_per_token: float) -> str:
    label = LABELS[r["way"]] + (f", run {r['rep']}" if len([x for x in results if x["way"] == r["way"]]) > 1 else "")
    if "error" in r:
        return f"| {label} | failed: {r['error']} ||||||||||||"
    s = summarize(r)
    ratio = {w: (f"{s['tok_s'] / by_way[w]['tok_s']:.2f}x" if w in by_way else "-") for w in ("trl-defaults", "trl-fp32")}
    dtype = r.get("precision", {}).get("dtype", "fp32")
    own = bound["bfloat16" if dtype == "bf16" else "float32"]
    return (f"| {label} | {dtype} | {'on' if r.get('gradient_checkpointing') else 'off'} | {r['steps']} x {r['batch']} | "
            f"{s['s_step']:.2f} | {s['tok_s']:.1f} | {s['padding']:.0%} | {r['peak_rss_mb']:.0f} | {r['losses'][0]:.4f} | "
            f"{r['losses'][-1]:.4f} | {ratio['trl-defaults']} | {ratio['trl-fp32']} | "
            f"{s['tok_s'] * flop_per_token / (own * 1e9):.0%} |")


def report(spec: BenchSpec, results: list[dict], bound: dict[str, float], command: str, load: tuple) -> str:
    """The results block: machine, command, one table row per way, ratios against both TRL baselines."""
    flop_per_token = 4 * results[0]["params_base"]
    rows = [f"- machine: {machine()}; load average (1 min) {load[0]:.2f} before, {load[1]:.2f} after",
            f"- command: `{command}`",
            f"- workload: {len(spec.rows)} GSM8K train rows (chat template, chain-of-thought target, loss on the "
            f"completion), batch {spec.batch_size}, max length {spec.max_length}, LoRA r 16 all-linear dropout 0.05, "
            f"lr {spec.learning_rate} linear, seed {spec.seed}; tokens/s = real (non-padding) tokens per second of "
            f"optimizer steps 2..N (a one-step run counts its only step); 'vs (a)'/'vs (b)': this run's tokens/s over the best "
            f"run of that baseline",
            f"- matmul bound (GEMMs of one decoder layer at {bound['tokens']} rows, bf16 at {bound['bf16_tokens']}): "
            f"fp32 {bound['float32']:.1f} GFLOP/s, bf16 {bound['bfloat16']:.1f} GFLOP/s; LoRA step cost taken as 4 x "
            f"{results[0]['params_base'] / 1e6:.1f}M = {flop_per_token / 1e6:.0f} MFLOP per token (forward + input "
            f"gradients, the issue's estimate), so the bound is {bound['float32'] * 1e9 / flop_per_token:.0f} tokens/s "
            f"in fp32 and {bound['bfloat16'] * 1e9 / flop_per_token:.0f} in bf16 ('of bound': of the way's own precision)"]
    for r in results:
        if r["way"] == "mathtune" and "precision" in r and r.get("rep", 1) == 1:
            rows.append(f"- precision auto chose **{r['precision']['dtype']}**: {r['precision']['why']}")
    rows += ["", "| way | precision | grad. ckpt | steps x batch | s/step | real tokens/s | padding share | peak RSS MB | "
             "loss step 1 | final loss | vs (a) | vs (b) | of bound |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    by_way: dict[str, dict] = {}  # the best repetition of each way, for the ratios
    for r in (r for r in results if "error" not in r):
        s = summarize(r)
        if r["way"] not in by_way or s["tok_s"] > by_way[r["way"]]["tok_s"]:
            by_way[r["way"]] = s
    rows += [_way_row(r, results, by_way, bound, flop_per_token) for r in results]
    first = {r["way"]: r for r in reversed(results) if "losses" in r}
    notes = []
    for way in ("mathtune", "mathtune-peft-lora", "mathtune-recast", "mathtune-fp32", "trl-defaults"):
        if way in first and "trl-fp32" in first:
            n, la, lb, gap = _loss_gap(first[way], first["trl-fp32"])
            notes.append(f"{way} {la:.4f} vs plain TRL fp32 {lb:.4f} after step {n} ({gap:.2%} apart)")
    if notes:
        rows += ["", "Loss: " + "; ".join(notes) + ". Per-step losses: "
                 + "; ".join(f"{r['way']} (run {r['rep']}) " + ", ".join(f"{x:.3f}" for x in r["losses"])
                             for r in results if "losses" in r)]
    return "\n".join(rows)


def write_results(path: Path, block: str) -> None:
    """Replace the text between the markers of the results file (created when missing), keeping the notes around."""
    begin, end = "<!-- train_speed:begin -->", "<!-- train_speed:end -->"
    text = path.read_text() if path.exists() else f"# Training speed\n\n{begin}\n{end}\n"
    head, rest = text.split(begin, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{head}{begin}\n{block}\n{end}{rest.split(end, 1)[1]}")


def run_benchmark(spec: BenchSpec, ways: list[str], command: str, repeat: int = 1, on_result=None) -> str:
    """Measure the matmul bound and each way (own process each); return the results block."""
    import json

    from mathtune.precision import cpu_verdict, read_cpu_info

    load_before = os.getloadavg()[0]
    config = json.loads((Path(spec.model_path) / "config.json").read_text())
    tokens = 2048  # about one GSM8K batch of 8
    # where bf16 is emulated (15-60x slower) a 2048-row bf16 bound would take minutes: measure it on 256 rows once
    slow_bf16 = cpu_verdict(read_cpu_info())[0] == "none"
    bf16_tokens = 256 if slow_bf16 else tokens
    bound = {"tokens": tokens, "bf16_tokens": bf16_tokens, "float32": matmul_bound(config, tokens, "float32"),
             "bfloat16": matmul_bound(config, bf16_tokens, "bfloat16", reps=1 if slow_bf16 else 3)}
    params_base = _matmul_params(config)
    results: list[dict] = []
    # the cheap ways first, and again with `repeat` (the machine is shared: the best repetition is the least disturbed);
    # TRL defaults once, last, since on a CPU without bf16 instructions one of its steps takes minutes
    order = [w for w in RUN_ORDER if w in ways]
    for rep in range(repeat):
        for way in order:
            if rep and way == "trl-defaults":
                continue
            result = run_isolated(way, spec)
            result["rep"] = rep + 1
            print(f"{way}: {result}", flush=True)
            results.append(result)
            result["params_base"] = params_base
            results.sort(key=lambda r: (list(WAYS).index(r["way"]), r["rep"]))
            if on_result is not None:  # keep what is measured so far, should the slow way be cut short
                on_result(report(spec, results, bound, command, (load_before, os.getloadavg()[0])))
    return report(spec, results, bound, command, (load_before, os.getloadavg()[0]))


def _matmul_params(config: dict) -> int:
    """Weights that take part in a matmul per token: the decoder layers' projections and the (tied) LM head."""
    h, f, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    kv = config["num_key_value_heads"] * config.get("head_dim", h // config["num_attention_heads"])
    return layers * (2 * h * h + 2 * h * kv + 3 * h * f) + h * config["vocab_size"]
