"""`mathtune eval --bench NAME`: benchmark names -> a recipe whose `data.eval` loads that benchmark."""

from __future__ import annotations

from pathlib import Path

from mathtune.config import Recipe
from mathtune.data.fewshot import DEFAULT_SET
from mathtune.errors import UserError

# name -> data source spec (hub datasets; `--path` points any of them at a local copy with the same schema)
BENCHES: dict[str, dict] = {
    "gsm8k": {"source": "gsm8k", "split": "test"},
    "gsm-hard": {"source": "gsm_hard"},
    "math": {"source": "math", "split": "test"},
    "math500": {"source": "math500"},
    "svamp": {"source": "svamp", "split": "test"},
    "asdiv": {"source": "asdiv"},
}
FILE_SUFFIXES = (".jsonl", ".json", ".parquet")
DEFAULT_TASK_SIZE = 100
TASK_SEED_OFFSET = 1_000_000  # reasoning-gym seeds item i with seed + i: stay clear of the small seeds recipes train on


def bench_spec(bench: str, path: str | None, limit: int | None, seed: int) -> dict:
    """The data source spec for a benchmark name, a data file, or a reasoning-gym task."""
    if bench in BENCHES:
        return {**BENCHES[bench], **({"path": path} if path else {})}
    if bench.endswith(FILE_SUFFIXES):
        if not Path(bench).is_file():
            raise UserError(f"--bench {bench}: file not found")
        return {"source": "file", "path": bench}
    from mathtune.data.sources.reasoning_gym import _tasks

    if bench not in _tasks():  # neither a named benchmark, a file, nor a task: name all three kinds, closest first
        import difflib

        close = difflib.get_close_matches(bench, [*BENCHES, *_tasks()], n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UserError(f"--bench {bench}: not a named benchmark ({', '.join(BENCHES)}), a "
                        f"{'/'.join(FILE_SUFFIXES)} file or a reasoning-gym task.{hint}")
    return {"source": "reasoning_gym", "task": bench, "size": limit or DEFAULT_TASK_SIZE, "seed": TASK_SEED_OFFSET + seed}


def bench_recipe(bench: str, *, model: str, path: str | None, limit: int | None, overrides: list[str]) -> Recipe:
    """A validated evaluation-only recipe for `mathtune eval`: the `eval:` block is the schema's defaults with
    `overrides` (`eval.KEY=VALUE`, `format.KEY=VALUE`, as --set) applied, so every EvalConfig key is settable."""
    from pydantic import ValidationError

    from mathtune.config import Recipe, apply_overrides
    from mathtune.schema import describe_error

    raw = apply_overrides({"name": Path(bench).stem if bench.endswith(FILE_SUFFIXES) else bench, "model": model,
                           "baseline": False, "eval": {"limit": limit}}, overrides)
    seed = raw["eval"].get("seed", Recipe.model_fields["eval"].default.seed)
    raw["data"] = {"eval": bench_spec(bench, path, limit, seed if isinstance(seed, int) else 0)}
    if raw["eval"].get("fewshot") and not raw["eval"].get("fewshot_set") and bench in DEFAULT_SET:
        raw["eval"]["fewshot_set"] = DEFAULT_SET[bench]  # `--fewshot 8` on gsm8k: Wei et al.'s exemplars
    try:
        return Recipe.model_validate(raw)
    except ValidationError as exc:
        raise UserError(f"--bench {bench}: {describe_error(exc, '', Recipe)}") from None
