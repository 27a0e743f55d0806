"""`mathtune export RUN_OR_ADAPTER --merged DIR [--gguf FILE]`: merge a LoRA adapter into its base; GGUF for llama.cpp."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mathtune.cli.common import DebugOpt, guarded, mathtune_home
from mathtune.errors import UserError


def export(
    source: Path = typer.Argument(..., help="A run folder (with adapter/) or a LoRA adapter folder"),
    merged: Optional[Path] = typer.Option(None, "--merged", help="Save the merged checkpoint + tokenizer here"),
    gguf: Optional[Path] = typer.Option(None, "--gguf", help="Write a GGUF file for llama.cpp / Ollama"),
    gguf_dtype: str = typer.Option("f16", "--gguf-dtype", help="f16 (half the size) or f32 (exact)"),
    debug: bool = DebugOpt,
):
    """Merge the adapter into its base model and save it as a plain checkpoint and/or a GGUF file."""

    @guarded
    def body():
        if merged is None and gguf is None:
            raise UserError("export: nothing to do; pass --merged DIR and/or --gguf FILE")
        if gguf_dtype not in ("f16", "f32"):
            raise UserError(f"--gguf-dtype {gguf_dtype!r}: expected f16 or f32")
        if gguf is not None and gguf.exists():
            raise UserError(f"--gguf {gguf}: file exists; choose another name")
        if merged is not None and merged.exists() and any(merged.iterdir()):
            raise UserError(f"--merged {merged}: folder exists and is not empty; choose another folder")
        from mathtune.export.merge import merged_model, save_atomic

        model, tokenizer, adapter = merged_model(source, mathtune_home())
        typer.echo(f"merged {adapter} into its base")
        if merged is not None:
            typer.echo(f"checkpoint: {save_atomic(model, tokenizer, merged)}")
        if gguf is not None:
            from mathtune.export.gguf import write_gguf

            typer.echo(f"gguf: {write_gguf(model, tokenizer, gguf, gguf_dtype, name=source.resolve().name)}")

    body(debug=debug)


def register(app: typer.Typer) -> None:
    """Add `export` to the app."""
    app.command()(export)
