"""`mathtune data RECIPE [--write out.jsonl|out.parquet]`: curate a recipe's training data and print each step.

    mathtune data tiny/sft_magpie_curated --write curated.jsonl
    mathtune data tiny/grpo_default --pass-rates runs/grpo/pass_rates/step-00000.json   # a GRPO pool's pass rates

Prints rows kept and dropped per filter, per-stratum counts, dedup/decontamination/mix counts and token-length
percentiles; the curated rows (what training would see, validation rows included) can be written atomically and
read back with `{source: file, path: curated.jsonl}`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import List, Optional

import typer

from mathtune.cli.common import DebugOpt, SetOpt, guarded, mathtune_home
from mathtune.errors import UserError

WRITE_SUFFIXES = (".jsonl", ".parquet")


def load_local_tokenizer(model: str, override: Optional[str]):
    """(tokenizer or None, note): the recipe model's tokenizer from disk or the local hub cache, never downloaded."""
    from transformers import AutoTokenizer

    from mathtune.models import resolve_model

    if override == "approx":
        return None, "approximate token counts (--tokenizer approx)"
    try:
        path = override or resolve_model(model, mathtune_home())
        return AutoTokenizer.from_pretrained(path, local_files_only=True), f"tokenizer of {path}"
    except (OSError, ValueError, UserError) as e:
        # offline and not cached: the statistics are still worth having, with the counts marked approximate
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
        return None, f"approximate token counts: tokenizer of {override or model} not available locally ({reason})"


def write_rows(rows: list[dict], path: Path) -> None:
    """Write rows as JSONL or Parquet (meta as JSON text there), through a temporary file and a rename."""
    if path.suffix not in WRITE_SUFFIXES:
        raise UserError(f"--write {path}: expected a .jsonl or .parquet file name")
    from mathtune.runs import atomic_path

    with atomic_path(path) as tmp:
        if path.suffix == ".jsonl":
            tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            # meta differs in shape between sources (and between reasoning-gym tasks): one JSON text column is safe
            flat = [{**r, "meta": json.dumps(r.get("meta") or {}, ensure_ascii=False)} for r in rows]
            pq.write_table(pa.Table.from_pylist(flat), tmp)


def pass_rate_histogram(path: Path, cfg) -> list[str]:
    """Lines of a cached pass-rate file's histogram, with the recipe's band when it is a GRPO recipe using one."""
    from mathtune.train.grpo_pass_rate import read_pass_rates
    from mathtune.train.grpo_pool import histogram

    if not path.is_file():
        raise UserError(f"--pass-rates {path}: file not found")
    try:
        rates = read_pass_rates(path)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"--pass-rates {path}: {str(exc).splitlines()[0]}") from None
    rate_cfg = cfg.grpo.pass_rate if cfg.kind == "grpo" else None  # only a GRPO recipe has a band
    band = tuple(rate_cfg.band) if rate_cfg is not None and rate_cfg.enabled else None
    return [f"{path}:"] + histogram(rates, band=band)


def data(
    recipe: str = typer.Argument(..., help="Recipe YAML or shipped recipe name (e.g. tiny/sft_magpie_curated)"),
    set_: Optional[List[str]] = SetOpt,
    write: Optional[Path] = typer.Option(None, "--write", help="Write the curated rows to a .jsonl or .parquet file"),
    force: bool = typer.Option(False, "--force", help="Replace the --write file if it exists"),
    tokenizer: Optional[str] = typer.Option(
        None, "--tokenizer", help="Tokenizer folder/id for token counts (default: the recipe's model); 'approx': none"
    ),
    pass_rates: Optional[Path] = typer.Option(
        None, "--pass-rates", help="A pass-rate file of `mathtune grpo` (RUN/pass_rates/step-N.json): print its histogram"
    ),
    debug: bool = DebugOpt,
):
    """Curate a recipe's training data: print the statistics of each step, optionally write the result."""

    @guarded
    def body():
        from mathtune.config import load_recipe
        from mathtune.data.curation import format_stats
        from mathtune.data.load import load_splits

        if write is not None and write.suffix not in WRITE_SUFFIXES:
            raise UserError(f"--write {write}: expected a .jsonl or .parquet file name")
        if write is not None and write.exists() and not (force and write.is_file()):
            what = "is a folder" if write.is_dir() else "file exists; pass --force to replace it"
            raise UserError(f"--write {write}: {what}")
        cfg = load_recipe(recipe, set_ or [])
        if cfg.data.train is None:
            raise UserError(f"{recipe}: data.train: missing (nothing to curate)")
        tok, note = load_local_tokenizer(cfg.model, tokenizer)
        # load_splits logs the same statistics for run logs; here they are printed once, below
        logger = logging.getLogger("mathtune")
        level = logger.level
        logger.setLevel(logging.WARNING)
        try:
            splits = load_splits(cfg, tok)
        finally:
            logger.setLevel(level)
        typer.echo(f"recipe {cfg.name}: {note}")
        evals = [f"{len(splits.eval)} rows (data.eval)"]
        evals += [f"{len(rows)} rows ({name})" for name, rows in splits.extra_eval.items()]
        typer.echo("evaluation sets: " + ", ".join(evals))
        for line in format_stats(splits.curation):
            typer.echo(line)
        if splits.validation:
            typer.echo(f"validation: {len(splits.validation)} of these rows are held out for eval loss")
        if write is not None:
            write_rows(splits.train + splits.validation, write)
            typer.echo(f"wrote {len(splits.train) + len(splits.validation)} rows to {write}")
        if pass_rates is not None:
            for line in pass_rate_histogram(pass_rates, cfg):
                typer.echo(line)

    body(debug=debug)


def register(app: typer.Typer) -> None:
    """Add `data` to the app."""
    app.command("data")(data)
