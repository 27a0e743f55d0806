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
    import reasoning_gym  # noqa: F401  (a task name is checked by the source's own validation)

    return {"source": "reasoning_gym", "task": bench, "size": limit or DEFAULT_TASK_SIZE, "seed": TASK_SEED_OFFSET + seed}


def bench_recipe(bench: str, *, model: str, path: str | None, limit: int | None, samples: int, temperature: float,
                 top_p: float, seed: int, max_new_tokens: int, batch_size: int, template: str, fewshot: int = 0,
                 fewshot_set: str | None = None) -> Recipe:
    """A validated evaluation-only recipe for `mathtune eval`."""
    from pydantic import ValidationError

    from mathtune.config import Recipe
    from mathtune.schema import describe_error

    raw = {
        "name": Path(bench).stem if bench.endswith(FILE_SUFFIXES) else bench,
        "model": model,
        "baseline": False,
        "data": {"eval": bench_spec(bench, path, limit, seed)},
        "format": {"template": template},
        "eval": {"limit": limit, "samples": samples, "temperature": temperature, "top_p": top_p, "seed": seed,
                 "max_new_tokens": max_new_tokens, "batch_size": batch_size, "fewshot": fewshot,
                 "fewshot_set": fewshot_set or (DEFAULT_SET.get(bench) if fewshot else None)},
    }
    try:
        return Recipe.model_validate(raw)
    except ValidationError as exc:
        raise UserError(f"--bench {bench}: {describe_error(exc, '', Recipe)}") from None
