"""`mathtune bench train`: training speed of plain TRL against mathtune's fast path, in one run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from mathtune.cli.common import DebugOpt, guarded, mathtune_home
from mathtune.errors import UserError

bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks: measured speed, written to a results file.")
DEFAULT_RESULTS = Path("benchmarks/results/train_speed.md")


@bench_app.command("train")
def train_speed(
    model: str = typer.Option("default", "--model", help="Hub id, local folder, or 'default'"),
    data: Optional[Path] = typer.Option(
        None, "--data", help="GSM8K train copy: a folder with train.jsonl, or a .jsonl (default: the packaged copy)"),
    steps: int = typer.Option(8, "--steps", min=1, help="Optimizer steps per way"),
    defaults_steps: Optional[int] = typer.Option(
        None, "--defaults-steps", min=1, help="Steps for (a) TRL defaults, which is very slow on CPUs without bf16"),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    defaults_batch: Optional[int] = typer.Option(None, "--defaults-batch", min=1, help="Batch for (a) TRL defaults"),
    max_length: int = typer.Option(512, "--max-length", min=16),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch threads (default: torch's)"),
    repeat: int = typer.Option(1, "--repeat", min=1, help="Run (b) and (c) this many times, alternating"),
    way: Optional[List[str]] = typer.Option(
        None, "--way", help="Only these ways: trl-defaults, trl-fp32, mathtune (precision auto), mathtune-fp32, "
        "mathtune-recast (auto without speed.frozen_bf16), mathtune-peft-lora (auto without speed.fused_lora)"),
    output: Path = typer.Option(DEFAULT_RESULTS, "--output", "-o", help="Results markdown (block between markers)"),
    no_write: bool = typer.Option(False, "--no-write", help="Print only"),
    debug: bool = DebugOpt,
):
    """Tokens/s, peak memory and loss of (a) TRL defaults, (b) TRL fp32, (c) mathtune auto, (d) mathtune fp32, ..."""

    @guarded
    def body():
        from mathtune.models import resolve_model
        from mathtune.train.speed import WAYS, BenchSpec, gsm8k_rows, run_benchmark, write_results

        ways = list(way or WAYS)
        unknown = [w for w in ways if w not in WAYS]
        if unknown:
            raise UserError(f"--way {unknown[0]!r}: expected one of: {', '.join(WAYS)}")
        data_path = data or packaged_gsm8k_train()
        if data_path is None:
            raise UserError("--data: no GSM8K train copy is packaged with mathtune here; pass --data PATH "
                            "(a folder holding train.jsonl, or a .jsonl file)")
        if not data_path.exists():
            raise UserError(f"--data {data_path}: not found (a folder holding train.jsonl, or a .jsonl file)")
        rows = gsm8k_rows(data_path, steps * batch_size)
        if len(rows) < steps * batch_size:
            raise UserError(f"--data {data_path}: {len(rows)} rows, need {steps * batch_size} for {steps} steps of {batch_size}")
        spec = BenchSpec(model_path=resolve_model(model, mathtune_home()), rows=rows, steps=steps,
                         batch_size=batch_size, max_length=max_length, threads=threads,
                         steps_by_way={"trl-defaults": defaults_steps} if defaults_steps else {},
                         batch_by_way={"trl-defaults": defaults_batch} if defaults_batch else {})
        write = None if no_write else (lambda text: write_results(output, text))
        block = run_benchmark(spec, ways, " ".join(["mathtune", *sys.argv[1:]]), repeat, on_result=write)
        typer.echo(block)
        if not no_write:
            write_results(output, block)
            typer.echo(f"written: {output}")

    body(debug=debug)


def packaged_gsm8k_train() -> Path | None:
    """GSM8K's train split as shipped inside the package (mathtune/data/gsm8k/train.jsonl), when it is there."""
    from importlib import resources

    path = Path(str(resources.files("mathtune") / "data" / "gsm8k" / "train.jsonl"))
    return path if path.is_file() else None


def register(app: typer.Typer) -> None:
    """Add the `bench` command group."""
    app.add_typer(bench_app, name="bench")
