"""Data sources: `load_source({"source": name, **options})` -> rows of the common schema (see `base.py`).

Importing this package registers every built-in source; add your own with `@register_source("name", Options)`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


from mathtune.data.sources import hub, local, reasoning_gym  # noqa: F401  (importing registers the sources)
from mathtune.data.sources.base import (
    ROW_FIELDS, SOURCES, DataError, SourceOptions, make_row, register_source, resolve_named,
)

__all__ = ["SOURCES", "DataError", "SourceOptions", "load_source", "validate_spec", "make_row", "register_source"]

def validate_spec(spec: Mapping[str, Any], *, where: str = "data") -> tuple[Any, SourceOptions]:
    """Check `spec` against its source's options without loading; problems raise a one-line DataError."""
    _, source, opts = resolve_named(spec, "source", SOURCES, where)
    if opts.limit is not None and opts.limit < 0:
        raise DataError(f"{where}.limit: expected a count >= 0, got {opts.limit}")
    return source, opts


def load_source(spec: Mapping[str, Any], *, where: str = "data") -> list[dict]:
    """Validate `spec` against its source's options and load the rows; problems raise a one-line DataError."""
    source, opts = validate_spec(spec, where=where)
    name = spec["source"]
    try:
        rows = source.load(opts)
    except DataError as e:
        raise DataError(f"{where}: {e}") from e
    rows = rows if opts.limit is None else rows[: opts.limit]
    _check_rows(rows, name, where)
    return rows


def _check_rows(rows: Any, name: str, where: str) -> None:
    # a user's own source can return anything; catch it here rather than deep inside a trainer
    if not isinstance(rows, list):
        raise DataError(f"{where}: source {name!r} returned {type(rows).__name__}, expected a list of rows")
    for i, row in enumerate(rows, start=1):
        bad = next((f for f in ROW_FIELDS if not isinstance(row, dict) or not isinstance(row.get(f), str)), None)
        if bad is not None:
            raise DataError(f"{where}: source {name!r} row {i}: {bad!r} must be a string (see make_row)")
